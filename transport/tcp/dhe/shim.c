//go:build cgo && !nodhe

#include <stdio.h>
#include <string.h>
#include "shim.h"

// status_begin empties the calling thread's error queue (SSL_get_error needs
// an empty queue before the call) and resets st.
static void status_begin(dtc_status *st) {
	ERR_clear_error();
	memset(st, 0, sizeof(*st));
}

// status_end records ret and moves the thread's error queue into st.
static int status_end(dtc_status *st, int ret) {
	const char *data = NULL;
	int flags = 0;
	unsigned long e;
	size_t used = 0;
	char one[256];

	st->ret = ret;
	// The queue holds at most ERR_NUM_ERRORS (16) entries: bounded.
	while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
		if (st->reason == 0) {
			st->reason = ERR_GET_REASON(e);
		}
		ERR_error_string_n(e, one, sizeof(one));
		if (used > 0 && used + 2 < sizeof(st->msg)) {
			memcpy(st->msg + used, "; ", 2);
			used += 2;
		}
		used += (size_t)snprintf(st->msg + used, sizeof(st->msg) - used, "%s%s%s", one,
			(flags & ERR_TXT_STRING) && data && *data ? " " : "",
			(flags & ERR_TXT_STRING) && data ? data : "");
		if (used >= sizeof(st->msg)) {
			used = sizeof(st->msg) - 1;
		}
	}
	return ret;
}

// ssl_status is status_end for SSL_* I/O calls: it also records SSL_get_error.
static int ssl_status(SSL *ssl, dtc_status *st, int ret) {
	st->ssl_error = SSL_get_error(ssl, ret);
	return status_end(st, ret);
}

SSL_CTX *dtc_ctx_new(dtc_status *st) {
	SSL_CTX *ctx;

	status_begin(st);
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx != NULL) {
		if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
			!SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION)) {
			SSL_CTX_free(ctx);
			ctx = NULL;
		}
	}
	if (ctx != NULL) {
		SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET |
			SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
		// Idle connections give their record buffers back.
		SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		// Session-id resumption spares returning clients a DHE exchange;
		// cap its cache.
		SSL_CTX_sess_set_cache_size(ctx, 4096);
	}
	status_end(st, ctx != NULL);
	return ctx;
}

// dtc_ctx_use_cert loads the certificate chain: ret 1, 0 (unreadable) or -1
// (not an RSA key: DHE_RSA signs the key exchange with it).
int dtc_ctx_use_cert(SSL_CTX *ctx, const char *file, dtc_status *st) {
	X509 *leaf;

	status_begin(st);
	if (SSL_CTX_use_certificate_chain_file(ctx, file) != 1) {
		return status_end(st, 0);
	}
	leaf = SSL_CTX_get0_certificate(ctx);
	if (leaf == NULL || !EVP_PKEY_is_a(X509_get0_pubkey(leaf), "RSA")) {
		return status_end(st, -1);
	}
	return status_end(st, 1);
}

int dtc_ctx_use_key(SSL_CTX *ctx, const char *file, dtc_status *st) {
	int ok;

	status_begin(st);
	ok = SSL_CTX_use_PrivateKey_file(ctx, file, SSL_FILETYPE_PEM) == 1 &&
		SSL_CTX_check_private_key(ctx) == 1;
	return status_end(st, ok);
}

// dtc_ctx_set_ciphers sets the TLS 1.2 cipher list and checks that it keeps
// at least one DHE key exchange (ret 1), else ret 0 (bad string) or -1 (no DHE).
int dtc_ctx_set_ciphers(SSL_CTX *ctx, const char *ciphers, dtc_status *st) {
	STACK_OF(SSL_CIPHER) *list;
	int i, n;

	status_begin(st);
	if (SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
		return status_end(st, 0);
	}
	list = SSL_CTX_get_ciphers(ctx);
	n = list == NULL ? 0 : sk_SSL_CIPHER_num(list);
	for (i = 0; i < n; i++) {
		if (SSL_CIPHER_get_kx_nid(sk_SSL_CIPHER_value(list, i)) == NID_kx_dhe) {
			return status_end(st, 1);
		}
	}
	return status_end(st, -1);
}

// dtc_ctx_set_dh_file loads DH parameters for DHE: ret 1, 0 (unreadable or
// refused, st->bits set once parsed) or -1 (not DH parameters).
int dtc_ctx_set_dh_file(SSL_CTX *ctx, const char *file, dtc_status *st) {
	BIO *in;
	EVP_PKEY *params;

	status_begin(st);
	in = BIO_new_file(file, "r");
	if (in == NULL) {
		return status_end(st, 0);
	}
	// Reads "DH PARAMETERS" and "X9.42 DH PARAMETERS" (and other kinds,
	// refused below).
	params = PEM_read_bio_Parameters(in, NULL);
	BIO_free(in);
	if (params == NULL) {
		return status_end(st, 0);
	}
	st->bits = EVP_PKEY_get_bits(params);
	if (!EVP_PKEY_is_a(params, "DH") && !EVP_PKEY_is_a(params, "DHX")) {
		EVP_PKEY_free(params);
		return status_end(st, -1);
	}
	// On success the context owns params; the security level is checked here.
	if (SSL_CTX_set0_tmp_dh_pkey(ctx, params) != 1) {
		EVP_PKEY_free(params);
		return status_end(st, 0);
	}
	return status_end(st, 1);
}

int dtc_ctx_set_dh_auto(SSL_CTX *ctx, dtc_status *st) {
	status_begin(st);
	return status_end(st, (int)SSL_CTX_set_dh_auto(ctx, 1));
}

int dtc_ctx_security_level(SSL_CTX *ctx) {
	return SSL_CTX_get_security_level(ctx);
}

void dtc_ctx_free(SSL_CTX *ctx) {
	SSL_CTX_free(ctx); // drops a reference: live SSLs keep the context alive
}

// dtc_ssl_new returns a server SSL wired to two empty memory BIOs: Go writes
// the peer's bytes into the read BIO and sends what the write BIO holds.
SSL *dtc_ssl_new(SSL_CTX *ctx, dtc_status *st) {
	SSL *ssl;
	BIO *rbio, *wbio;

	status_begin(st);
	ssl = SSL_new(ctx);
	rbio = BIO_new(BIO_s_mem());
	wbio = BIO_new(BIO_s_mem());
	if (ssl == NULL || rbio == NULL || wbio == NULL) {
		SSL_free(ssl);
		BIO_free(rbio);
		BIO_free(wbio);
		status_end(st, 0);
		return NULL;
	}
	// An empty read BIO means "retry later", not end of stream.
	BIO_set_mem_eof_return(rbio, -1);
	SSL_set_bio(ssl, rbio, wbio); // ssl owns both BIOs now
	SSL_set_accept_state(ssl);
	status_end(st, 1);
	return ssl;
}

void dtc_ssl_free(SSL *ssl) {
	SSL_free(ssl);
}

int dtc_handshake(SSL *ssl, dtc_status *st) {
	status_begin(st);
	return ssl_status(ssl, st, SSL_do_handshake(ssl));
}

// dtc_read returns the plaintext of at most one TLS record (no read-ahead).
int dtc_read(SSL *ssl, void *buf, int len, dtc_status *st) {
	status_begin(st);
	return ssl_status(ssl, st, SSL_read(ssl, buf, len));
}

// dtc_write seals buf (at most 16384 bytes) into exactly one TLS record in the
// write BIO.
int dtc_write(SSL *ssl, const void *buf, int len, dtc_status *st) {
	status_begin(st);
	return ssl_status(ssl, st, SSL_write(ssl, buf, len));
}

// dtc_shutdown queues a close_notify alert in the write BIO.
int dtc_shutdown(SSL *ssl, dtc_status *st) {
	status_begin(st);
	return ssl_status(ssl, st, SSL_shutdown(ssl));
}

// dtc_feed appends bytes received from the peer to the read BIO.
int dtc_feed(SSL *ssl, const void *buf, int len, dtc_status *st) {
	status_begin(st);
	return status_end(st, BIO_write(SSL_get_rbio(ssl), buf, len));
}

// dtc_out_pending returns the number of bytes waiting in the write BIO.
int dtc_out_pending(SSL *ssl) {
	return (int)BIO_ctrl_pending(SSL_get_wbio(ssl));
}

// dtc_drain moves up to len bytes out of the write BIO; returns the count.
int dtc_drain(SSL *ssl, void *buf, int len) {
	int n = BIO_read(SSL_get_wbio(ssl), buf, len);
	return n < 0 ? 0 : n;
}

// dtc_in_pending reports whether received bytes wait unprocessed: in the read
// BIO or as a partial record inside the SSL.
int dtc_in_pending(SSL *ssl) {
	return BIO_ctrl_pending(SSL_get_rbio(ssl)) > 0 || SSL_has_pending(ssl);
}

const char *dtc_version(SSL *ssl) {
	return SSL_get_version(ssl);
}

const char *dtc_cipher(SSL *ssl) {
	return SSL_CIPHER_get_name(SSL_get_current_cipher(ssl));
}
