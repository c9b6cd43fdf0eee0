//go:build cgo && !nodhe

package dhe

/*
#cgo CFLAGS: -DOPENSSL_API_COMPAT=30000 -DOPENSSL_NO_DEPRECATED
#cgo LDFLAGS: -lssl -lcrypto
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// Available reports whether this build can serve DHE clients.
const Available = true

// sslErrorNames names SSL_get_error() codes for messages.
var sslErrorNames = map[C.int]string{
	C.SSL_ERROR_NONE:        "SSL_ERROR_NONE",
	C.SSL_ERROR_SSL:         "SSL_ERROR_SSL",
	C.SSL_ERROR_WANT_READ:   "SSL_ERROR_WANT_READ",
	C.SSL_ERROR_WANT_WRITE:  "SSL_ERROR_WANT_WRITE",
	C.SSL_ERROR_SYSCALL:     "SSL_ERROR_SYSCALL",
	C.SSL_ERROR_ZERO_RETURN: "SSL_ERROR_ZERO_RETURN",
}

// statusError turns a failed helper call into an error carrying OpenSSL's
// error string, or the SSL_get_error() code when the queue was empty.
func statusError(what string, st *C.dtc_status) error {
	msg := C.GoString(&st.msg[0])
	if msg == "" {
		name, ok := sslErrorNames[st.ssl_error]
		if !ok {
			name = fmt.Sprintf("SSL_get_error %d", int(st.ssl_error))
		}
		msg = fmt.Sprintf("%s (OpenSSL returned %d, no error queued)", name, int(st.ret))
	}
	return fmt.Errorf("%s: openssl: %s", what, msg)
}

// withCString calls f with s as a C string that lives for the call.
func withCString[T any](s string, f func(*C.char) T) T {
	cs := C.CString(s)
	defer C.free(unsafe.Pointer(cs))
	return f(cs)
}

// configure loads cfg into a fresh SSL_CTX. The order matters: the cipher
// string may set @SECLEVEL, which the certificate and DH checks obey.
func configure(ctx *C.SSL_CTX, cfg Config) error {
	var st C.dtc_status
	switch withCString(cfg.ciphers(), func(s *C.char) C.int { return C.dtc_ctx_set_ciphers(ctx, s, &st) }) {
	case 1:
	case -1:
		return fmt.Errorf("dhe: ciphers %q enable no DHE cipher suite (want e.g. %s)", cfg.ciphers(), DefaultCiphers)
	default:
		return statusError(fmt.Sprintf("dhe: ciphers %q", cfg.ciphers()), &st)
	}
	switch withCString(cfg.CertFile, func(s *C.char) C.int { return C.dtc_ctx_use_cert(ctx, s, &st) }) {
	case 1:
	case -1:
		return fmt.Errorf("dhe: certificate file %s: not an RSA key; DHE_RSA cipher suites need an RSA certificate", cfg.CertFile)
	default:
		return statusError("dhe: certificate file "+cfg.CertFile, &st)
	}
	if withCString(cfg.KeyFile, func(s *C.char) C.int { return C.dtc_ctx_use_key(ctx, s, &st) }) != 1 {
		return statusError(fmt.Sprintf("dhe: key file %s (for certificate %s)", cfg.KeyFile, cfg.CertFile), &st)
	}
	if cfg.DHParamsFile == "" {
		if C.dtc_ctx_set_dh_auto(ctx, &st) != 1 {
			return statusError("dhe: automatic DH parameters", &st)
		}
		return nil
	}
	return setDHFile(ctx, cfg.DHParamsFile)
}

// dhBitsForLevel is the smallest DH group each OpenSSL security level accepts.
var dhBitsForLevel = [...]int{0, 1024, 2048, 3072, 7680, 15360}

// setDHFile loads the operator's dhfile, explaining a security-level refusal.
func setDHFile(ctx *C.SSL_CTX, file string) error {
	var st C.dtc_status
	switch withCString(file, func(s *C.char) C.int { return C.dtc_ctx_set_dh_file(ctx, s, &st) }) {
	case 1:
		return nil
	case -1:
		return fmt.Errorf("dhe: dhfile %s: holds parameters of another kind, not DH PARAMETERS", file)
	}
	if st.reason == C.SSL_R_DH_KEY_TOO_SMALL {
		level := int(C.dtc_ctx_security_level(ctx))
		want := 2048
		if level >= 0 && level < len(dhBitsForLevel) {
			want = max(want, dhBitsForLevel[level])
		}
		msg := fmt.Sprintf("dhe: dhfile %s: DH parameters of %d bits are below OpenSSL security level %d; use %d+ bits",
			file, int(st.bits), level, want)
		if level > 1 && st.bits >= 1024 {
			msg += " or add @SECLEVEL=1 to ciphers"
		}
		return errors.New(msg)
	}
	return statusError("dhe: dhfile "+file, &st)
}
