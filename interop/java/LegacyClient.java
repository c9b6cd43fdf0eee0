// LegacyClient is a black-box test client for dtoperator that behaves like the
// deployed Android (2017) and Java clients of the old C++ server. It runs every
// scenario of PROTOCOL.md sections 1-4 against a running server over real TLS
// sockets and prints one line per scenario:
//
//	PASS <scenario>
//	FAIL <scenario>: <reason>
//
// then one line per TLS profile it used, "TLS <profile> <protocol> <suite>",
// and "SUMMARY passed=N failed=M". It exits 0 iff every scenario passed. On
// stderr, "SPAN <scenario> <start> <end>" (Unix milliseconds) says when each
// scenario ran, to find the server's log lines of a failure.
//
// What it does exactly as the deployed clients do:
//   - one command = one OutputStream.write(byte[]) = one TLS record, no terminator;
//   - one reply = one InputStream.read into a 1024-byte buffer, split on '|'
//     into exactly 4 fields;
//   - media is a byte stream read in 32-byte frames with readFully, each frame
//     written with one write, 50 per second;
//   - the keepalive is the single byte "D", written on either socket;
//   - after a call the media socket is closed and a new one opened and
//     registered with one write of "ts|sid";
//   - the server certificate is pinned: the leaf's DER must equal the PEM given
//     with --pin (no CA, no host name check).
//
// Usage:
//
//	java -cp DIR LegacyClient --host 127.0.0.1 --command PORT --media PORT
//	    --pin cert.pem --caller android2017 --callee java-default
//	    --users alice:pw,bob:pw,carol:pw [--wrong-password X]
//	    [--frame-ms 20] [--scenarios a,b,...]
//
//	java -cp DIR LegacyClient --agent 1 --host 127.0.0.1 --command PORT --media PORT --pin cert.pem
//
// The second form is the remote-controlled agent mode of the interop matrix
// (see runAgents): it reads one command a line on stdin and answers each with
// one line, "ok ..." or "err ...".
//
// Profiles: android2017 (TLS 1.2, only TLS_DHE_RSA_WITH_AES_256_GCM_SHA384),
// java-default (the platform's defaults) and java-tls12 (the platform's
// suites over TLS 1.2 only, as the Java client on a Java 8 runtime).
//
// The first user is the caller (caller profile), the second the callee
// (callee profile), the third a third party (caller profile).

import java.io.DataInputStream;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.EnumSet;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Queue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLHandshakeException;
import javax.net.ssl.SSLSession;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.SSLSocketFactory;
import javax.net.ssl.TrustManager;
import javax.net.ssl.X509TrustManager;

public final class LegacyClient {
    static final int CONNECT_TIMEOUT_MS = 5_000;
    static final int SO_TIMEOUT_MS = 10_000; // on every socket, handshake included
    static final long SCENARIO_TIMEOUT_S = 60;
    static final int REPLY_BUFFER = 1024;
    static final int FRAME = 32; // AMR-NB 12.2 kbit/s frame
    static final int CLOCK_SLACK_S = 5; // server and client share a clock here
    static final String INVALID = "resp|invalid|command\n";
    static final String NOBODY = "nosuchuser";
    static final String BARRIER = "quiet-barrier";

    /** Profile is how a deployed client sets up its TLS sockets. */
    enum Profile {
        /** The 2017 Android client: TLS 1.2 and one DHE suite, nothing else. */
        ANDROID2017("android2017") {
            @Override
            void apply(SSLSocket s) {
                s.setEnabledProtocols(new String[] {"TLSv1.2"});
                s.setEnabledCipherSuites(new String[] {"TLS_DHE_RSA_WITH_AES_256_GCM_SHA384"});
            }
        },
        /** The Java client: the platform's defaults, unchanged (TLS 1.3 on Java 17). */
        JAVA_DEFAULT("java-default") {
            @Override
            void apply(SSLSocket s) {}
        },
        /**
         * The Java client on a Java 8 runtime, which has no TLS 1.3: the
         * platform's cipher suites (ECDHE first) over TLS 1.2 only.
         */
        JAVA_TLS12("java-tls12") {
            @Override
            void apply(SSLSocket s) {
                s.setEnabledProtocols(new String[] {"TLSv1.2"});
            }
        };

        final String label;

        Profile(String label) {
            this.label = label;
        }

        abstract void apply(SSLSocket s);

        static Profile parse(String s) {
            for (Profile p : values()) {
                if (p.label.equals(s)) {
                    return p;
                }
            }
            throw new IllegalArgumentException(
                    "unknown profile " + q(s) + " (android2017, java-default or java-tls12)");
        }
    }

    /** Fail is a scenario failure; its message is the reason printed. */
    static final class Fail extends Exception {
        private static final long serialVersionUID = 1L;

        Fail(String reason) {
            super(reason);
        }
    }

    /** PinningTrustManager accepts exactly one server certificate, as deployed. */
    static final class PinningTrustManager implements X509TrustManager {
        private final byte[] pinned;

        PinningTrustManager(byte[] pinned) {
            this.pinned = pinned.clone();
        }

        @Override
        public void checkServerTrusted(X509Certificate[] chain, String authType) throws CertificateException {
            if (chain == null || chain.length == 0) {
                throw new CertificateException("server sent no certificate");
            }
            byte[] leaf = chain[0].getEncoded();
            if (!MessageDigest.isEqual(leaf, pinned)) {
                throw new CertificateException("server certificate sha256:" + sha256(leaf)
                        + " does not match the pinned certificate sha256:" + sha256(pinned));
            }
        }

        @Override
        public void checkClientTrusted(X509Certificate[] chain, String authType) throws CertificateException {
            throw new CertificateException("this client trusts no clients");
        }

        @Override
        public X509Certificate[] getAcceptedIssuers() {
            return new X509Certificate[0];
        }
    }

    /** Scenario is one named check that starts from fresh logins. */
    record Scenario(String name, Body body) {}

    interface Body {
        void run(Run r) throws Exception;
    }

    final String host;
    final int commandPort;
    final int mediaPort;
    final Profile callerProfile;
    final Profile calleeProfile;
    final String[] names = new String[3];
    final String[] passwords = new String[3];
    final String wrongPassword;
    final long frameMillis;
    final SSLSocketFactory factory;
    /** First negotiated "protocol suite" per profile. */
    final Map<Profile, String> tls = new EnumMap<>(Profile.class);

    LegacyClient(Map<String, String> opt) throws Exception {
        host = need(opt, "host");
        commandPort = Integer.parseInt(need(opt, "command"));
        mediaPort = Integer.parseInt(need(opt, "media"));
        callerProfile = Profile.parse(need(opt, "caller"));
        calleeProfile = Profile.parse(need(opt, "callee"));
        String[] users = need(opt, "users").split(",");
        if (users.length != 3) {
            throw new IllegalArgumentException("--users wants three name:password pairs");
        }
        for (int i = 0; i < 3; i++) {
            int colon = users[i].indexOf(':');
            if (colon <= 0) {
                throw new IllegalArgumentException("--users: " + q(users[i]) + " is not name:password");
            }
            names[i] = users[i].substring(0, colon);
            passwords[i] = users[i].substring(colon + 1);
        }
        wrongPassword = opt.getOrDefault("wrong-password", "not-" + passwords[0]);
        frameMillis = Long.parseLong(opt.getOrDefault("frame-ms", "20"));
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(null, new TrustManager[] {new PinningTrustManager(readPem(need(opt, "pin")))}, null);
        factory = ctx.getSocketFactory();
    }

    static byte[] readPem(String path) throws Exception {
        try (InputStream in = new FileInputStream(path)) {
            return CertificateFactory.getInstance("X.509").generateCertificate(in).getEncoded();
        }
    }

    // ---------------------------------------------------------------- a run

    /** Run is one scenario's sockets; close closes all of them. */
    final class Run implements AutoCloseable {
        final List<Socket> sockets = new CopyOnWriteArrayList<>();

        Phone phone(int who, Profile p) {
            return new Phone(this, names[who], passwords[who], p);
        }

        /** online connects, logs in and registers media, as a client at start. */
        Phone online(int who, Profile p) throws Exception {
            Phone ph = phone(who, p);
            ph.connect();
            ph.login();
            ph.registerMedia();
            return ph;
        }

        /** open connects to port and shakes hands with profile p. */
        SSLSocket open(Profile p, int port, String what) throws Exception {
            SSLSocket s = (SSLSocket) factory.createSocket();
            sockets.add(s);
            s.connect(new InetSocketAddress(host, port), CONNECT_TIMEOUT_MS);
            s.setSoTimeout(SO_TIMEOUT_MS);
            p.apply(s);
            try {
                s.startHandshake();
            } catch (SSLHandshakeException e) {
                throw new Fail(what + " (" + p.label + "): TLS handshake failed: " + e.getMessage());
            }
            SSLSession ss = s.getSession();
            synchronized (tls) {
                tls.putIfAbsent(p, ss.getProtocol() + " " + ss.getCipherSuite());
            }
            return s;
        }

        @Override
        public void close() {
            for (Socket s : sockets) {
                closeQuietly(s);
            }
        }
    }

    // ---------------------------------------------------------------- a phone

    /** Phone is one deployed client: a command socket and a media socket. */
    final class Phone {
        final Run run;
        final String user;
        final String password;
        final Profile profile;
        SSLSocket cmd;
        InputStream in;
        OutputStream out;
        SSLSocket media;
        DataInputStream mediaIn;
        OutputStream mediaOut;
        String sid;
        String lastSent = ""; // for reports; a login's password is masked

        Phone(Run run, String user, String password, Profile profile) {
            this.run = run;
            this.user = user;
            this.password = password;
            this.profile = profile;
        }

        void connect() throws Exception {
            cmd = run.open(profile, commandPort, user + " command");
            in = cmd.getInputStream();
            out = cmd.getOutputStream();
        }

        /** send writes one command with one write: one TLS record. */
        void send(String msg) throws Fail {
            String[] f = msg.split("\\|", -1);
            lastSent = f.length == 4 && f[1].equals("login") ? f[0] + "|login|" + f[2] + "|***" : msg;
            try {
                out.write(msg.getBytes(StandardCharsets.UTF_8));
            } catch (IOException e) {
                throw new Fail(user + ": write " + q(lastSent) + ": " + e);
            }
        }

        /** say sends ts|verb|arg|sid. */
        void say(String verb, String arg) throws Fail {
            send(now() + "|" + verb + "|" + arg + "|" + sid);
        }

        /** recv reads one reply with one read into a 1024-byte buffer. */
        String recv() throws Fail {
            byte[] buf = new byte[REPLY_BUFFER];
            int n;
            try {
                n = in.read(buf);
            } catch (SocketTimeoutException e) {
                throw new Fail(user + ": no reply within " + SO_TIMEOUT_MS / 1000
                        + " s (last sent " + q(lastSent) + ")");
            } catch (IOException e) {
                throw new Fail(user + ": read reply: " + e);
            }
            if (n < 0) {
                throw new Fail(user + ": command connection closed by the server");
            }
            return new String(buf, 0, n, StandardCharsets.UTF_8);
        }

        /** reply reads one reply and returns its 4 fields, checking the server time. */
        String[] reply() throws Fail {
            String m = recv();
            String[] f = m.split("\\|", -1);
            if (f.length != 4) {
                throw new Fail(user + ": reply " + q(m) + " does not split into 4 fields");
            }
            long st;
            try {
                st = Long.parseLong(f[0]);
            } catch (NumberFormatException e) {
                throw new Fail(user + ": reply " + q(m) + ": server time is not a number");
            }
            if (Math.abs(now() - st) > CLOCK_SLACK_S) {
                throw new Fail(user + ": reply " + q(m) + ": server time off by " + (st - now()) + " s");
            }
            return f;
        }

        /** expect reads one reply whose fields after the time are exactly want. */
        String[] expect(String want) throws Fail {
            String[] f;
            try {
                f = reply();
            } catch (Fail e) {
                throw new Fail(e.getMessage() + ", waiting for " + q(want));
            }
            String rest = f[1] + "|" + f[2] + "|" + f[3];
            if (!rest.equals(want)) {
                throw new Fail(user + ": got " + q(rest) + ", want " + q(want));
            }
            return f;
        }

        void login() throws Fail {
            loginWith(password);
        }

        /** loginWith logs in and keeps the session id, which must be a Java long >= 1. */
        void loginWith(String pw) throws Fail {
            send(now() + "|login|" + user + "|" + pw);
            String[] f = reply();
            if (!f[1].equals("resp") || !f[2].equals("login")) {
                throw new Fail(user + ": login answered " + q(String.join("|", f)));
            }
            long id;
            try {
                id = Long.parseLong(f[3]);
            } catch (NumberFormatException e) {
                throw new Fail(user + ": session id " + q(f[3]) + " is not a Java long");
            }
            if (id < 1 || !f[3].equals(Long.toString(id))) {
                throw new Fail(user + ": session id " + q(f[3]) + " is not a decimal in 1..2^63-1");
            }
            sid = f[3];
        }

        /** expectRefusedLogin logs in with pw and expects invalid. */
        void expectRefusedLogin(String pw) throws Fail {
            send(now() + "|login|" + user + "|" + pw);
            expect(INVALID);
        }

        /** registerMedia opens a media socket, registers it, and waits until bound. */
        void registerMedia() throws Exception {
            openMedia();
            registerOpenMedia();
        }

        void openMedia() throws Exception {
            media = run.open(profile, mediaPort, user + " media");
            mediaIn = new DataInputStream(media.getInputStream());
            mediaOut = media.getOutputStream();
        }

        /**
         * registerOpenMedia writes "ts|sid" in one write. There is no reply, so it
         * asks the only way a client can: a call to oneself is ring|busy once
         * media is bound, invalid before.
         */
        void registerOpenMedia() throws Exception {
            writeMedia((now() + "|" + sid).getBytes(StandardCharsets.UTF_8), "registration");
            for (int i = 0; i < 200; i++) {
                say("call", user);
                String[] f = reply();
                String rest = f[1] + "|" + f[2] + "|" + f[3];
                if (rest.equals("ring|busy|" + user)) {
                    return;
                }
                if (!rest.equals(INVALID)) {
                    throw new Fail(user + ": probing the media registration got " + q(rest));
                }
                Thread.sleep(10);
            }
            throw new Fail(user + ": media registration never took effect"
                    + " (a call to self still invalid after 200 tries)");
        }

        /** newMedia is what clients do after every call: close media, open and register anew. */
        void newMedia() throws Exception {
            closeQuietly(media);
            registerMedia();
        }

        void writeMedia(byte[] b, String what) throws Fail {
            try {
                mediaOut.write(b);
            } catch (IOException e) {
                throw new Fail(user + ": write media " + what + ": " + e);
            }
        }

        /** readFrame reads the next 32 media bytes. */
        byte[] readFrame() throws Fail {
            byte[] b = new byte[FRAME];
            try {
                mediaIn.readFully(b);
            } catch (SocketTimeoutException e) {
                throw new Fail(user + ": no media frame within " + SO_TIMEOUT_MS / 1000 + " s");
            } catch (IOException e) {
                throw new Fail(user + ": read media frame: " + e);
            }
            return b;
        }

        void keepalive() throws Fail {
            send("D");
        }

        void mediaKeepalive() throws Fail {
            writeMedia(new byte[] {'D'}, "keepalive");
        }

        /** quiet checks that nothing waits for this phone: a lookup's answer comes next. */
        void quiet() throws Fail {
            say("lookup", BARRIER);
            expect("lookup|" + BARRIER + "|doesntexist");
        }
    }

    // ---------------------------------------------------------------- helpers

    static final int A = 0; // caller
    static final int B = 1; // callee
    static final int C = 2; // third party

    static long now() {
        return System.currentTimeMillis() / 1000;
    }

    /** call rings b from a and lets b accept, checking every reply. */
    static void call(Phone a, Phone b) throws Fail {
        a.say("call", b.user);
        a.expect("ring|available|" + b.user);
        b.expect("ring|incoming|" + a.user);
        b.say("accept", a.user);
        a.expect("call|start|" + b.user);
        b.expect("call|start|" + a.user);
    }

    /** ring rings b from a. */
    static void ring(Phone a, Phone b) throws Fail {
        a.say("call", b.user);
        a.expect("ring|available|" + b.user);
        b.expect("ring|incoming|" + a.user);
    }

    /** hangUp ends the call from a's side and checks that b is told. */
    static void hangUp(Phone a, Phone b) throws Fail {
        a.say("end", b.user);
        b.expect("call|end|" + a.user);
        a.quiet();
    }

    /** frame is the i-th 32-byte frame from one user to another. */
    static byte[] frame(String from, String to, int i) {
        byte[] f = new byte[FRAME];
        Arrays.fill(f, (byte) '.');
        byte[] label = String.format("%05d:%s>%s|", i, from, to).getBytes(StandardCharsets.UTF_8);
        System.arraycopy(label, 0, f, 0, Math.min(label.length, FRAME));
        return f;
    }

    /**
     * talk sends n numbered frames each way at the codec's pace, each frame one
     * write on its own thread as the clients' audio threads do, and checks that
     * both sides receive them byte-exact and in order.
     */
    void talk(Phone a, Phone b, int n) throws Exception {
        Queue<String> errs = new ConcurrentLinkedQueue<>();
        Thread ta = sender(a, b, n, errs);
        Thread tb = sender(b, a, n, errs);
        try {
            receive(b, a, n);
            receive(a, b, n);
        } finally {
            ta.join(SO_TIMEOUT_MS + n * frameMillis);
            tb.join(SO_TIMEOUT_MS + n * frameMillis);
        }
        if (!errs.isEmpty()) {
            throw new Fail(String.join("; ", errs));
        }
    }

    Thread sender(Phone from, Phone to, int n, Queue<String> errs) {
        Thread t = new Thread(() -> {
            try {
                for (int i = 0; i < n; i++) {
                    from.writeMedia(frame(from.user, to.user, i), "frame " + i);
                    Thread.sleep(frameMillis);
                }
            } catch (Fail e) {
                errs.add(e.getMessage());
            } catch (InterruptedException e) {
                errs.add(from.user + ": media sender interrupted");
            }
        }, "media " + from.user);
        t.setDaemon(true);
        t.start();
        return t;
    }

    /** receive reads n frames sent from `from` to `at` and checks each. */
    static void receive(Phone at, Phone from, int n) throws Fail {
        for (int i = 0; i < n; i++) {
            byte[] got = at.readFrame();
            byte[] want = frame(from.user, at.user, i);
            if (!Arrays.equals(got, want)) {
                throw new Fail(at.user + ": media frame " + i + " is " + q(got) + ", want " + q(want));
            }
        }
    }

    /** expectClosed waits until the server has closed s. */
    static void expectClosed(Socket s, String what) throws Fail {
        byte[] buf = new byte[REPLY_BUFFER];
        try {
            s.setSoTimeout(SO_TIMEOUT_MS);
            InputStream in = s.getInputStream();
            for (int i = 0; i < 100; i++) {
                if (in.read(buf) < 0) {
                    return;
                }
            }
            throw new Fail(what + " still sending");
        } catch (SocketTimeoutException e) {
            throw new Fail(what + " still open after " + SO_TIMEOUT_MS / 1000 + " s");
        } catch (IOException e) {
            return; // reset or closed: closed
        }
    }

    /** expectNoMedia checks that nothing arrives on p's media socket for a while. */
    static void expectNoMedia(Phone p, int millis) throws Exception {
        p.media.setSoTimeout(millis);
        try {
            int n = p.media.getInputStream().read(new byte[64]);
            throw new Fail(p.user + ": got " + (n < 0 ? "end of stream" : n + " media bytes") + " where none were due");
        } catch (SocketTimeoutException e) {
            p.media.setSoTimeout(SO_TIMEOUT_MS);
        }
    }

    static void closeQuietly(Socket s) {
        if (s == null) {
            return;
        }
        try {
            s.close();
        } catch (IOException e) {
            // closing a socket of a finished scenario: nothing to do
        }
    }

    // ---------------------------------------------------------------- scenarios

    List<Scenario> scenarios() {
        List<Scenario> l = new ArrayList<>();
        l.add(new Scenario("login", this::login));
        l.add(new Scenario("lookup", this::lookup));
        l.add(new Scenario("call-accept-media", this::callAcceptMedia));
        l.add(new Scenario("reject", this::reject));
        l.add(new Scenario("cancel-while-ringing", this::cancelWhileRinging));
        l.add(new Scenario("end-reregister-second-call", this::endReregisterSecondCall));
        l.add(new Scenario("timeout", this::timeout));
        l.add(new Scenario("busy", this::busy));
        l.add(new Scenario("notavailable", this::notAvailable));
        l.add(new Scenario("invalid-expired-timestamp", this::invalidExpired));
        l.add(new Scenario("invalid-unknown-command", this::invalidUnknownCommand));
        l.add(new Scenario("invalid-extra-field", this::invalidExtraField));
        l.add(new Scenario("invalid-foreign-session", this::invalidForeignSession));
        l.add(new Scenario("invalid-before-login", this::invalidBeforeLogin));
        l.add(new Scenario("invalid-wrong-password", this::invalidWrongPassword));
        l.add(new Scenario("invalid-no-matching-call", this::invalidNoMatchingCall));
        l.add(new Scenario("fixed-wrong-password-does-not-kick", this::wrongPasswordNoKick));
        l.add(new Scenario("fixed-relogin", this::relogin));
        l.add(new Scenario("fixed-caller-cannot-accept-own-call", this::callerAcceptsOwnCall));
        l.add(new Scenario("jbyte", this::jbyte));
        l.add(new Scenario("peer-death-in-call", this::peerDeathInCall));
        l.add(new Scenario("peer-death-ringing", this::peerDeathRinging));
        l.add(new Scenario("peer-media-death-in-call", this::peerMediaDeathInCall));
        return l;
    }

    void login(Run r) throws Exception {
        Phone a = r.phone(A, callerProfile);
        Phone b = r.phone(B, calleeProfile);
        Phone c = r.phone(C, callerProfile);
        for (Phone p : List.of(a, b, c)) {
            p.connect();
            p.login();
        }
        if (a.sid.equals(b.sid) || b.sid.equals(c.sid) || a.sid.equals(c.sid)) {
            throw new Fail("two sessions share an id: " + a.sid + ", " + b.sid + ", " + c.sid);
        }
        for (Phone p : List.of(a, b, c)) {
            p.registerMedia();
        }
    }

    void lookup(Run r) throws Exception {
        Phone a = r.phone(A, callerProfile);
        a.connect();
        a.login();
        for (int who : new int[] {A, B, C}) { // C is offline: lookup is about accounts
            a.say("lookup", names[who]);
            a.expect("lookup|" + names[who] + "|exists");
        }
        a.say("lookup", NOBODY);
        a.expect("lookup|" + NOBODY + "|doesntexist");
    }

    void callAcceptMedia(Run r) throws Exception {
        Phone a = r.online(A, callerProfile);
        Phone b = r.online(B, calleeProfile);
        call(a, b);
        talk(a, b, 50);
        hangUp(a, b);
        a.newMedia();
        b.newMedia();
    }

    void reject(Run r) throws Exception {
        Phone a = r.online(A, callerProfile);
        Phone b = r.online(B, calleeProfile);
        ring(a, b);
        b.say("reject", a.user);
        a.expect("call|reject|" + b.user);
        b.quiet();
        a.quiet();
        call(a, b); // both are idle again
        hangUp(b, a);
    }

    void cancelWhileRinging(Run r) throws Exception {
        Phone a = r.online(A, callerProfile);
        Phone b = r.online(B, calleeProfile);
        ring(a, b);
        b.keepalive(); // the callee is still ringing; an end from it is refused
        b.say("end", a.user);
        b.expect(INVALID);
        hangUp(a, b);
        b.quiet();
    }

    void endReregisterSecondCall(Run r) throws Exception {
        Phone a = r.online(A, callerProfile);
        Phone b = r.online(B, calleeProfile);
        call(a, b);
        talk(a, b, 10);
        hangUp(a, b);
        a.newMedia();
        b.newMedia();
        call(a, b);
        talk(a, b, 10);
        hangUp(b, a);
        a.newMedia();
        b.newMedia();
    }

    void timeout(Run r) throws Exception {
        Phone a = r.online(A, callerProfile);
        Phone b = r.online(B, calleeProfile);
        ring(a, b);
        a.say("timeout", b.user);
        b.expect("ring|timeout|" + a.user);
        a.quiet();
        b.quiet();
        ring(a, b); // both are idle again
        a.say("timeout", b.user);
        b.expect("ring|timeout|" + a.user);
    }

    void busy(Run r) throws Exception {
        Phone a = r.online(A, callerProfile);
        Phone b = r.online(B, calleeProfile);
        Phone c = r.online(C, callerProfile);
        ring(a, b);
        c.say("call", b.user); // the ringing callee
        c.expect("ring|busy|" + b.user);
        c.say("call", a.user); // the ringing caller
        c.expect("ring|busy|" + a.user);
        b.say("accept", a.user);
        a.expect("call|start|" + b.user);
        b.expect("call|start|" + a.user);
        for (Phone p : List.of(a, b)) { // in a call
            c.say("call", p.user);
            c.expect("ring|busy|" + p.user);
        }
        c.say("call", c.user); // himself
        c.expect("ring|busy|" + c.user);
        a.quiet();
        b.quiet();
    }

    void notAvailable(Run r) throws Exception {
        Phone a = r.online(A, callerProfile);
        a.say("call", NOBODY);
        a.expect("ring|notavailable|" + NOBODY);
        a.say("call", names[C]); // offline
        a.expect("ring|notavailable|" + names[C]);
        Phone c = r.phone(C, calleeProfile);
        c.connect();
        c.login();
        a.say("call", c.user); // logged in, no media
        a.expect("ring|notavailable|" + c.user);
        c.say("call", a.user); // ... and may not call either
        c.expect(INVALID);
        c.registerMedia();
        ring(a, c);
        a.say("timeout", c.user);
        c.expect("ring|timeout|" + a.user);
    }

    void invalidExpired(Run r) throws Exception {
        Phone a = r.phone(A, callerProfile);
        a.connect();
        a.login();
        for (long skew : new long[] {-360, 360}) {
            a.send((now() + skew) + "|lookup|" + names[B] + "|" + a.sid);
            a.expect(INVALID);
        }
        a.say("lookup", names[B]);
        a.expect("lookup|" + names[B] + "|exists");
    }

    void invalidUnknownCommand(Run r) throws Exception {
        Phone a = r.phone(A, callerProfile);
        a.connect();
        a.login();
        a.say("dance", names[B]);
        a.expect(INVALID);
        a.quiet();
    }

    void invalidExtraField(Run r) throws Exception {
        Phone a = r.online(A, callerProfile);
        Phone b = r.online(B, calleeProfile);
        a.send(now() + "|lookup|" + b.user + "|" + a.sid + "|x");
        a.expect(INVALID);
        a.send(now() + "|call|" + b.user + "|" + a.sid + "|x");
        a.expect(INVALID);
        b.quiet(); // no ring reached bob
        a.quiet();
    }

    void invalidForeignSession(Run r) throws Exception {
        Phone a = r.online(A, callerProfile);
        Phone b = r.online(B, calleeProfile);
        Phone c = r.online(C, callerProfile);
        b.send(now() + "|lookup|" + c.user + "|" + a.sid);
        b.expect(INVALID);
        b.send(now() + "|call|" + c.user + "|" + a.sid); // a call in alice's name
        b.expect(INVALID);
        c.quiet();
        a.quiet();
        b.quiet();
    }

    void invalidBeforeLogin(Run r) throws Exception {
        Phone a = r.phone(A, callerProfile);
        a.connect();
        a.login();
        Phone x = r.phone(B, calleeProfile);
        x.connect();
        x.send(now() + "|lookup|" + a.user + "|42");
        x.expect(INVALID);
        x.send(now() + "|lookup|" + a.user + "|" + a.sid); // a live session, not this connection's
        x.expect(INVALID);
        x.login(); // the connection is still usable
        x.quiet();
        a.quiet();
    }

    void invalidWrongPassword(Run r) throws Exception {
        Phone x = r.phone(A, callerProfile);
        x.connect();
        x.expectRefusedLogin(wrongPassword);
        Phone y = r.phone(B, calleeProfile);
        y.connect();
        y.send(now() + "|login|" + NOBODY + "|" + wrongPassword);
        y.expect(INVALID);
        Phone a = r.phone(A, calleeProfile); // the account is not locked
        a.connect();
        a.login();
        a.quiet();
    }

    void invalidNoMatchingCall(Run r) throws Exception {
        Phone a = r.online(A, callerProfile);
        Phone b = r.online(B, calleeProfile);
        for (String verb : List.of("accept", "reject", "end", "timeout")) {
            a.say(verb, b.user);
            a.expect(INVALID);
        }
        b.quiet();
    }

    void wrongPasswordNoKick(Run r) throws Exception {
        Phone a = r.online(A, callerProfile);
        Phone b = r.online(B, calleeProfile);
        Phone x = r.phone(A, calleeProfile);
        x.connect();
        x.expectRefusedLogin(wrongPassword);
        call(a, b); // both of alice's connections still work
        talk(a, b, 10);
        hangUp(a, b);
    }

    void relogin(Run r) throws Exception {
        Phone old = r.online(A, callerProfile);
        Phone b = r.online(B, calleeProfile);
        Phone fresh = r.online(A, calleeProfile);
        if (fresh.sid.equals(old.sid)) {
            throw new Fail("relogin handed out the old session id " + old.sid);
        }
        expectClosed(old.cmd, "old command connection");
        expectClosed(old.media, "old media connection");
        call(fresh, b);
        talk(fresh, b, 10);
        b.send(now() + "|lookup|" + fresh.user + "|" + old.sid); // the dead session
        b.expect(INVALID);
        hangUp(b, fresh);
    }

    void callerAcceptsOwnCall(Run r) throws Exception {
        Phone a = r.online(A, callerProfile);
        Phone b = r.online(B, calleeProfile);
        ring(a, b);
        a.say("accept", b.user);
        a.expect(INVALID);
        b.quiet();
        b.say("accept", a.user); // the callee still can
        a.expect("call|start|" + b.user);
        b.expect("call|start|" + a.user);
        hangUp(a, b);
    }

    void jbyte(Run r) throws Exception {
        Phone a = r.phone(A, callerProfile);
        a.connect();
        a.keepalive(); // before login
        a.login();
        a.keepalive(); // logged in, no media
        Phone b = r.online(B, calleeProfile);
        a.openMedia();
        a.mediaKeepalive(); // before registration
        a.registerOpenMedia();
        a.keepalive(); // idle
        a.mediaKeepalive();
        b.keepalive();
        b.mediaKeepalive();
        ring(a, b);
        a.keepalive(); // ringing
        b.keepalive();
        a.mediaKeepalive();
        b.mediaKeepalive();
        b.say("accept", a.user);
        a.expect("call|start|" + b.user);
        b.expect("call|start|" + a.user);
        a.keepalive(); // in a call
        b.keepalive();
        for (int i = 0; i < 10; i++) {
            a.mediaKeepalive();
            a.writeMedia(frame(a.user, b.user, i), "frame " + i);
            b.mediaKeepalive();
        }
        receive(b, a, 10); // the next 32 bytes are real frames, never a 'D'
        a.quiet();
        b.quiet();
        expectNoMedia(a, 300); // bob sent only keepalives
        hangUp(a, b);
    }

    void peerDeathInCall(Run r) throws Exception {
        Phone a = r.online(A, callerProfile);
        Phone b = r.online(B, calleeProfile);
        call(a, b);
        closeQuietly(b.cmd);
        a.expect("call|drop|" + a.sid);
        a.quiet();
        a.newMedia();
    }

    void peerDeathRinging(Run r) throws Exception {
        Phone a = r.online(A, callerProfile);
        Phone b = r.online(B, calleeProfile);
        ring(a, b);
        closeQuietly(b.cmd);
        a.expect("call|end|" + b.user);
        a.quiet();
    }

    void peerMediaDeathInCall(Run r) throws Exception {
        Phone a = r.online(A, callerProfile);
        Phone b = r.online(B, calleeProfile);
        call(a, b);
        closeQuietly(b.media);
        a.expect("call|drop|" + a.sid);
        a.quiet();
        b.quiet(); // bob is still logged in and told nothing
    }

    // ---------------------------------------------------------------- agent mode

    /**
     * Agent is one remote-controlled phone of --agent mode: the interop matrix
     * drives it one command at a time (see runAgents). Notifications that
     * arrive while it waits for a reply are queued for "expect".
     */
    final class Agent {
        final Run run = new Run();
        final Profile profile;
        final java.util.ArrayDeque<String> events = new java.util.ArrayDeque<>();
        Phone ph;

        Agent(Profile profile) {
            this.profile = profile;
        }

        /** isEvent says whether reply fields f are a notification, not a reply. */
        boolean isEvent(String[] f) {
            return f[1].equals("call") || (f[1].equals("ring") && (f[2].equals("incoming") || f[2].equals("timeout")));
        }

        /** next returns the next reply, queueing the notifications before it. */
        String next() throws Fail {
            for (;;) {
                String[] f = ph.reply();
                String rest = f[1] + "|" + f[2] + "|" + f[3];
                if (!isEvent(f)) {
                    return rest;
                }
                events.add(rest);
            }
        }

        /** barrier sends a lookup and returns once it is answered. */
        void barrier() throws Fail {
            ph.say("lookup", BARRIER);
            String got = next();
            if (!got.equals("lookup|" + BARRIER + "|doesntexist")) {
                throw new Fail(ph.user + ": barrier lookup answered " + q(got));
            }
        }

        String exec(String[] w) throws Exception {
            switch (w[0]) {
                case "login" -> {
                    ph = new Phone(run, w[1], w[2], profile);
                    ph.connect();
                    ph.login();
                    ph.registerMedia();
                    return ph.sid;
                }
                case "lookup" -> {
                    ph.say("lookup", w[1]);
                    String got = next();
                    String prefix = "lookup|" + w[1] + "|";
                    if (!got.startsWith(prefix)) {
                        throw new Fail(ph.user + ": lookup answered " + q(got));
                    }
                    return got.substring(prefix.length());
                }
                case "call" -> {
                    ph.say("call", w[1]);
                    String got = next();
                    if (got.equals(INVALID)) {
                        return "invalid";
                    }
                    String[] f = got.split("\\|", -1);
                    if (!f[0].equals("ring") || !f[2].equals(w[1])) {
                        throw new Fail(ph.user + ": call answered " + q(got));
                    }
                    return f[1];
                }
                case "accept", "reject", "end", "timeout" -> {
                    ph.say(w[0], w[1]);
                    ph.say("lookup", BARRIER);
                    String got = next();
                    if (got.equals(INVALID)) {
                        next(); // the barrier's answer
                        throw new Fail(ph.user + ": " + w[0] + " " + w[1] + " refused");
                    }
                    if (!got.equals("lookup|" + BARRIER + "|doesntexist")) {
                        throw new Fail(ph.user + ": " + w[0] + " then lookup answered " + q(got));
                    }
                    return "";
                }
                case "expect" -> {
                    return expect(w[1], Integer.parseInt(w[2]));
                }
                case "quiet" -> {
                    barrier();
                    if (!events.isEmpty()) {
                        String pending = String.join(", ", events);
                        events.clear();
                        throw new Fail(ph.user + ": unexpected " + pending);
                    }
                    return "";
                }
                case "media-send" -> {
                    for (int i = 0; i < Integer.parseInt(w[2]); i++) {
                        ph.writeMedia(frame(ph.user, w[1], i), "frame " + i);
                    }
                    return "";
                }
                case "media-expect" -> {
                    for (int i = 0; i < Integer.parseInt(w[2]); i++) {
                        byte[] got = ph.readFrame();
                        byte[] want = frame(w[1], ph.user, i);
                        if (!Arrays.equals(got, want)) {
                            throw new Fail(ph.user + ": media frame " + i + " is " + q(got) + ", want " + q(want));
                        }
                    }
                    return "";
                }
                case "media-quiet" -> {
                    expectNoMedia(ph, Integer.parseInt(w[1]));
                    return "";
                }
                case "media-talk" -> {
                    return mediaTalk(w[1], Integer.parseInt(w[2]));
                }
                case "reregister" -> {
                    reregister();
                    return "";
                }
                case "keepalive" -> {
                    ph.keepalive();
                    ph.mediaKeepalive();
                    return "";
                }
                case "kill" -> { // as a phone that loses its network: reset, no goodbye
                    for (Socket s : run.sockets) {
                        try {
                            s.setSoLinger(true, 0);
                        } catch (IOException e) {
                            // already closed
                        }
                    }
                    run.close();
                    return "";
                }
                case "tls" -> {
                    SSLSession c = ph.cmd.getSession();
                    SSLSession m = ph.media.getSession();
                    String cs = c.getProtocol() + " " + c.getCipherSuite();
                    String ms = m.getProtocol() + " " + m.getCipherSuite();
                    return cs.equals(ms) ? cs : cs + " (media " + ms + ")";
                }
                default -> throw new Fail("unknown agent command " + q(w[0]));
            }
        }

        /**
         * mediaTalk is a call as the phones hold it: n frames to peer, one
         * write every frameMillis on a thread of its own (paced by the clock,
         * not by the sum of sleeps), while this thread reads and checks n
         * frames from peer, byte-exact and in order. It answers
         * "sent=N received=M", or fails with the counts and the first bad or
         * missing frame.
         */
        String mediaTalk(String peer, int n) throws Exception {
            AtomicInteger sent = new AtomicInteger();
            AtomicBoolean stop = new AtomicBoolean();
            Queue<String> errs = new ConcurrentLinkedQueue<>();
            Thread sender = new Thread(() -> {
                long start = System.nanoTime();
                try {
                    for (int i = 0; i < n && !stop.get(); i++) {
                        long wait = start + i * frameMillis * 1_000_000L - System.nanoTime();
                        if (wait > 0) {
                            Thread.sleep(wait / 1_000_000L, (int) (wait % 1_000_000L));
                        }
                        ph.writeMedia(frame(ph.user, peer, i), "frame " + i);
                        sent.incrementAndGet();
                    }
                } catch (Fail e) {
                    errs.add(e.getMessage());
                } catch (InterruptedException e) {
                    errs.add(ph.user + ": media sender interrupted");
                }
            }, "media-talk " + ph.user);
            sender.setDaemon(true);
            sender.start();
            int received = 0;
            String bad = null;
            try {
                for (; received < n; received++) {
                    byte[] got = ph.readFrame();
                    byte[] want = frame(peer, ph.user, received);
                    if (!Arrays.equals(got, want)) {
                        bad = ph.user + ": media frame " + received + " is " + q(got) + ", want " + q(want);
                        break;
                    }
                }
            } catch (Fail e) {
                bad = e.getMessage() + " (waiting for frame " + received + ")";
            } finally {
                if (bad != null) {
                    stop.set(true);
                }
                sender.join(SO_TIMEOUT_MS + n * frameMillis);
            }
            String counts = "sent=" + sent.get() + " received=" + received;
            if (sender.isAlive()) {
                stop.set(true);
                errs.add(ph.user + ": media sender still running");
            }
            if (bad != null) {
                errs.add(bad);
            }
            if (!errs.isEmpty()) {
                throw new Fail(counts + ": " + String.join("; ", errs));
            }
            return counts;
        }

        /** expect waits up to ms for the next notification, which must be want. */
        String expect(String want, int ms) throws Exception {
            if (events.isEmpty()) {
                ph.cmd.setSoTimeout(ms);
                String[] f;
                try {
                    f = ph.reply();
                } catch (Fail e) {
                    throw new Fail(ph.user + ": no " + q(want) + " within " + ms + " ms (" + e.getMessage() + ")");
                } finally {
                    ph.cmd.setSoTimeout(SO_TIMEOUT_MS);
                }
                String rest = f[1] + "|" + f[2] + "|" + f[3];
                if (!isEvent(f)) {
                    throw new Fail(ph.user + ": got reply " + q(rest) + " while waiting for " + q(want));
                }
                events.add(rest);
            }
            String got = events.poll();
            if (!got.equals(want)) {
                throw new Fail(ph.user + ": got " + q(got) + ", want " + q(want));
            }
            return "";
        }

        /**
         * reregister closes the media socket, waits until the server has
         * dropped it (a call to oneself is refused again), then opens and
         * registers a new one, as the deployed clients do after a call.
         */
        void reregister() throws Exception {
            closeQuietly(ph.media);
            for (int i = 0;; i++) {
                ph.say("call", ph.user);
                String got = next();
                if (got.equals(INVALID)) {
                    break;
                }
                if (!got.equals("ring|busy|" + ph.user)) {
                    throw new Fail(ph.user + ": probing the old media got " + q(got));
                }
                if (i == 500) {
                    throw new Fail(ph.user + ": the server kept the closed media channel bound for 5 s");
                }
                Thread.sleep(10);
            }
            ph.registerMedia();
        }
    }

    /**
     * runAgents is --agent mode: it reads commands "ID VERB ARGS..." on stdin,
     * one a line, and answers each with one line on stdout, "ok [RESULT]" or
     * "err REASON". "ID new PROFILE" makes an agent, "ID close" closes one,
     * "quit" (or the end of stdin) ends the process.
     */
    void runAgents() throws IOException {
        java.io.BufferedReader in = new java.io.BufferedReader(
                new java.io.InputStreamReader(System.in, StandardCharsets.UTF_8));
        Map<String, Agent> agents = new HashMap<>();
        for (String line; (line = in.readLine()) != null && !line.equals("quit");) {
            String[] w = line.trim().split(" +");
            String answer;
            try {
                if (w.length < 2) {
                    throw new Fail("want ID VERB [ARGS]");
                }
                String[] args = Arrays.copyOfRange(w, 1, w.length);
                if (args[0].equals("new")) {
                    agents.put(w[0], new Agent(Profile.parse(args[1])));
                    answer = "ok";
                } else if (args[0].equals("close")) {
                    Agent a = agents.remove(w[0]);
                    if (a != null) {
                        a.run.close();
                    }
                    answer = "ok";
                } else {
                    Agent a = agents.get(w[0]);
                    if (a == null) {
                        throw new Fail("no agent " + q(w[0]));
                    }
                    if (a.ph == null && !args[0].equals("login")) {
                        throw new Fail(w[0] + ": not logged in");
                    }
                    answer = ("ok " + a.exec(args)).trim();
                }
            } catch (Exception e) {
                answer = "err " + describe(e).replace('\n', ' ');
            }
            System.out.println(answer);
            System.out.flush();
        }
        for (Agent a : agents.values()) {
            a.run.close();
        }
    }

    // ---------------------------------------------------------------- running

    /** runOne runs s with a deadline and returns null if it passed, else why not. */
    String runOne(Scenario s) {
        ExecutorService ex = Executors.newSingleThreadExecutor(task -> {
            Thread t = new Thread(task, "scenario " + s.name());
            t.setDaemon(true);
            return t;
        });
        Run r = new Run();
        try {
            Future<?> f = ex.submit(() -> {
                s.body().run(r);
                return null;
            });
            try {
                f.get(SCENARIO_TIMEOUT_S, TimeUnit.SECONDS);
                return null;
            } catch (TimeoutException e) {
                return "timed out after " + SCENARIO_TIMEOUT_S + " s";
            } catch (ExecutionException e) {
                return describe(e.getCause());
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return "interrupted";
            }
        } finally {
            r.close(); // also unblocks a scenario that timed out
            ex.shutdownNow();
        }
    }

    static String describe(Throwable t) {
        if (t instanceof Fail) {
            return t.getMessage();
        }
        String where = "";
        for (StackTraceElement e : t.getStackTrace()) {
            if (e.getClassName().startsWith(LegacyClient.class.getName())) {
                where = " at line " + e.getLineNumber();
                break;
            }
        }
        return t + where;
    }

    int runAll(List<String> only) {
        int passed = 0;
        int failed = 0;
        for (Scenario s : scenarios()) {
            if (!only.isEmpty() && !only.contains(s.name())) {
                continue;
            }
            long start = System.currentTimeMillis();
            String why = runOne(s);
            // When it ran, for matching the server's log: "SPAN <scenario> <start ms> <end ms>".
            System.err.printf("SPAN %s %d %d%n", s.name(), start, System.currentTimeMillis());
            if (why == null) {
                passed++;
                System.out.println("PASS " + s.name());
            } else {
                failed++;
                System.out.println("FAIL " + s.name() + ": " + why.replace('\n', ' '));
            }
        }
        for (Profile p : EnumSet.of(callerProfile, calleeProfile)) {
            synchronized (tls) {
                System.out.println("TLS " + p.label + " " + tls.getOrDefault(p, "none none"));
            }
        }
        System.out.println("SUMMARY passed=" + passed + " failed=" + failed);
        return failed == 0 && passed > 0 ? 0 : 1;
    }

    static Map<String, String> parseArgs(String[] args) {
        Map<String, String> opt = new HashMap<>();
        for (int i = 0; i < args.length; i++) {
            if (!args[i].startsWith("--") || i + 1 >= args.length) {
                throw new IllegalArgumentException("want --name value pairs, got " + q(args[i]));
            }
            opt.put(args[i].substring(2), args[++i]);
        }
        return opt;
    }

    static String need(Map<String, String> opt, String key) {
        String v = opt.get(key);
        if (v == null) {
            throw new IllegalArgumentException("missing --" + key);
        }
        return v;
    }

    static String sha256(byte[] b) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(b));
        } catch (Exception e) {
            return "?";
        }
    }

    /** q quotes s for a report, showing control characters as escapes. */
    static String q(String s) {
        StringBuilder sb = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '\n') {
                sb.append("\\n");
            } else if (c < 0x20 || c == 0x7f) {
                sb.append(String.format("\\x%02x", (int) c));
            } else {
                sb.append(c);
            }
        }
        return sb.append('"').toString();
    }

    static String q(byte[] b) {
        return q(new String(b, StandardCharsets.ISO_8859_1));
    }

    public static void main(String[] args) {
        LegacyClient c;
        List<String> only;
        Map<String, String> opt;
        try {
            opt = parseArgs(args);
            if (opt.containsKey("agent")) { // agents log in with the names they are given
                opt.putIfAbsent("caller", "java-default");
                opt.putIfAbsent("callee", "java-default");
                opt.putIfAbsent("users", "-:-,-:-,-:-");
            }
            c = new LegacyClient(opt);
            String s = opt.getOrDefault("scenarios", "");
            only = s.isEmpty() ? List.of() : List.of(s.split(","));
        } catch (Exception e) {
            System.err.println("LegacyClient: " + e.getMessage());
            System.exit(2);
            return;
        }
        if (opt.containsKey("agent")) {
            try {
                c.runAgents();
            } catch (IOException e) {
                System.err.println("LegacyClient: agent: " + e);
                System.exit(1);
            }
            System.exit(0);
        }
        System.exit(c.runAll(only));
    }
}
