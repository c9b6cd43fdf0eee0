package clienthello

import "slices"

// dheSuites holds every IANA-registered TLS_DHE_RSA_* and TLS_DHE_DSS_* cipher
// suite: finite-field ephemeral Diffie-Hellman, which Go's crypto/tls does not
// implement. (Pre-standard ids such as 0x0063 or the draft ChaCha20 0xCC15 are
// left out: no TLS engine we run speaks them.)
var dheSuites = map[uint16]string{
	0x0011: "TLS_DHE_DSS_EXPORT_WITH_DES40_CBC_SHA",
	0x0012: "TLS_DHE_DSS_WITH_DES_CBC_SHA",
	0x0013: "TLS_DHE_DSS_WITH_3DES_EDE_CBC_SHA",
	0x0014: "TLS_DHE_RSA_EXPORT_WITH_DES40_CBC_SHA",
	0x0015: "TLS_DHE_RSA_WITH_DES_CBC_SHA",
	0x0016: "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA",
	0x0032: "TLS_DHE_DSS_WITH_AES_128_CBC_SHA",
	0x0033: "TLS_DHE_RSA_WITH_AES_128_CBC_SHA",
	0x0038: "TLS_DHE_DSS_WITH_AES_256_CBC_SHA",
	0x0039: "TLS_DHE_RSA_WITH_AES_256_CBC_SHA",
	0x0040: "TLS_DHE_DSS_WITH_AES_128_CBC_SHA256",
	0x0044: "TLS_DHE_DSS_WITH_CAMELLIA_128_CBC_SHA",
	0x0045: "TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA",
	0x0067: "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256",
	0x006A: "TLS_DHE_DSS_WITH_AES_256_CBC_SHA256",
	0x006B: "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256",
	0x0087: "TLS_DHE_DSS_WITH_CAMELLIA_256_CBC_SHA",
	0x0088: "TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA",
	0x0099: "TLS_DHE_DSS_WITH_SEED_CBC_SHA",
	0x009A: "TLS_DHE_RSA_WITH_SEED_CBC_SHA",
	0x009E: "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
	0x009F: "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", // the 2017 Android client's only suite
	0x00A2: "TLS_DHE_DSS_WITH_AES_128_GCM_SHA256",
	0x00A3: "TLS_DHE_DSS_WITH_AES_256_GCM_SHA384",
	0x00BD: "TLS_DHE_DSS_WITH_CAMELLIA_128_CBC_SHA256",
	0x00BE: "TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA256",
	0x00C3: "TLS_DHE_DSS_WITH_CAMELLIA_256_CBC_SHA256",
	0x00C4: "TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA256",
	0xC042: "TLS_DHE_DSS_WITH_ARIA_128_CBC_SHA256",
	0xC043: "TLS_DHE_DSS_WITH_ARIA_256_CBC_SHA384",
	0xC044: "TLS_DHE_RSA_WITH_ARIA_128_CBC_SHA256",
	0xC045: "TLS_DHE_RSA_WITH_ARIA_256_CBC_SHA384",
	0xC052: "TLS_DHE_RSA_WITH_ARIA_128_GCM_SHA256",
	0xC053: "TLS_DHE_RSA_WITH_ARIA_256_GCM_SHA384",
	0xC056: "TLS_DHE_DSS_WITH_ARIA_128_GCM_SHA256",
	0xC057: "TLS_DHE_DSS_WITH_ARIA_256_GCM_SHA384",
	0xC07C: "TLS_DHE_RSA_WITH_CAMELLIA_128_GCM_SHA256",
	0xC07D: "TLS_DHE_RSA_WITH_CAMELLIA_256_GCM_SHA384",
	0xC080: "TLS_DHE_DSS_WITH_CAMELLIA_128_GCM_SHA256",
	0xC081: "TLS_DHE_DSS_WITH_CAMELLIA_256_GCM_SHA384",
	0xC09E: "TLS_DHE_RSA_WITH_AES_128_CCM",
	0xC09F: "TLS_DHE_RSA_WITH_AES_256_CCM",
	0xC0A2: "TLS_DHE_RSA_WITH_AES_128_CCM_8",
	0xC0A3: "TLS_DHE_RSA_WITH_AES_256_CCM_8",
	0xCCAA: "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
}

// IsDHE reports whether id is a TLS_DHE_RSA_* or TLS_DHE_DSS_* cipher suite.
func IsDHE(id uint16) bool {
	_, ok := dheSuites[id]
	return ok
}

// OffersTLS13 reports whether the client offers TLS 1.3.
func (h *Hello) OffersTLS13() bool {
	return slices.Contains(h.SupportedVersions, VersionTLS13)
}

// OffersAny reports whether the client offers at least one of suites.
func (h *Hello) OffersAny(suites []uint16) bool {
	return slices.ContainsFunc(h.CipherSuites, func(id uint16) bool {
		return slices.Contains(suites, id)
	})
}

// OffersDHE reports whether the client offers a finite-field DHE suite.
func (h *Hello) OffersDHE() bool {
	return slices.ContainsFunc(h.CipherSuites, IsDHE)
}

// NeedsDHE reports whether the client must go to the DHE engine: it offers a
// DHE suite and neither TLS 1.3 nor any of goSuites, the TLS 1.2 suites the
// crypto/tls config accepts. A client offering DHE and ECDHE goes to
// crypto/tls; a client that fits neither also goes to crypto/tls, which
// refuses it with a clear alert.
func (h *Hello) NeedsDHE(goSuites []uint16) bool {
	return h.OffersDHE() && !h.OffersTLS13() && !h.OffersAny(goSuites)
}
