//go:build cgo && !nodhe

// C helpers for the dhe package. Each helper clears OpenSSL's per-thread error
// queue, makes one OpenSSL call (or a short fixed sequence) and reads the
// queue into a dtc_status before returning, so the call and its errors stay on
// one OS thread: one cgo call each.

#ifndef DTCALL_DHE_SHIM_H
#define DTCALL_DHE_SHIM_H

#if defined(__has_include)
#if !__has_include(<openssl/ssl.h>)
#error "dtcall: OpenSSL 3 headers not found: install libssl-dev (Debian/Ubuntu: apt-get install libssl-dev pkg-config), or build without DHE: CGO_ENABLED=0 or -tags nodhe"
#define DTCALL_NO_OPENSSL 1
#endif
#endif

#ifndef DTCALL_NO_OPENSSL
#include <openssl/opensslv.h>
#if OPENSSL_VERSION_NUMBER < 0x30000000L
#error "dtcall: OpenSSL 3.0 or newer required (found older OpenSSL or LibreSSL headers): install libssl-dev from OpenSSL 3, or build without DHE: CGO_ENABLED=0 or -tags nodhe"
#define DTCALL_NO_OPENSSL 1
#endif
#endif

#ifndef DTCALL_NO_OPENSSL
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#else
// Just enough for the declarations below, so the #error above stays the
// only message.
typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
#endif

// dtc_status reports the outcome of one helper call.
typedef struct {
	int ret;       // the OpenSSL call's return value
	int ssl_error; // SSL_get_error() for SSL_* I/O calls, else 0
	int reason;    // ERR_GET_REASON() of the first queued error, 0 if none
	int bits;      // dtc_ctx_set_dh_file: DH parameter size in bits
	char msg[512]; // queued OpenSSL errors, "; "-separated, "" if none
} dtc_status;

SSL_CTX *dtc_ctx_new(dtc_status *st);
int dtc_ctx_use_cert(SSL_CTX *ctx, const char *file, dtc_status *st);
int dtc_ctx_use_key(SSL_CTX *ctx, const char *file, dtc_status *st);
int dtc_ctx_set_ciphers(SSL_CTX *ctx, const char *ciphers, dtc_status *st);
int dtc_ctx_set_dh_file(SSL_CTX *ctx, const char *file, dtc_status *st);
int dtc_ctx_set_dh_auto(SSL_CTX *ctx, dtc_status *st);
int dtc_ctx_security_level(SSL_CTX *ctx);
void dtc_ctx_free(SSL_CTX *ctx);

SSL *dtc_ssl_new(SSL_CTX *ctx, dtc_status *st);
void dtc_ssl_free(SSL *ssl);
int dtc_handshake(SSL *ssl, dtc_status *st);
int dtc_read(SSL *ssl, void *buf, int len, dtc_status *st);
int dtc_write(SSL *ssl, const void *buf, int len, dtc_status *st);
int dtc_shutdown(SSL *ssl, dtc_status *st);

int dtc_feed(SSL *ssl, const void *buf, int len, dtc_status *st);
int dtc_out_pending(SSL *ssl);
int dtc_drain(SSL *ssl, void *buf, int len);
int dtc_in_pending(SSL *ssl);

const char *dtc_version(SSL *ssl);
const char *dtc_cipher(SSL *ssl);

#endif
