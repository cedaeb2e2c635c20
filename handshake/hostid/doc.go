// Package hostid holds HIP host identities: the key pairs a node is named by,
// the Host Identity (HI) encodings that travel in the HOST_ID parameter, the
// Host Identity Tag (HIT) derived from them, and the signatures that go in
// HIP_SIGNATURE and HIP_SIGNATURE_2.
//
// What it implements:
//
//   - HI algorithms and encodings, RFC 7401 §3.2 and §5.2.9: RSA (algorithm
//     5, RFC 3110 §2 encoding) and ECDSA (algorithm 7, curves NIST P-256 and
//     P-384). DSA (3), ECDSA_LOW (9) and EdDSA (13, RFC 9374) are recognised
//     and refused with ErrUnsupportedAlgorithm.
//   - HIT Suites, RFC 7401 §5.2.10 Table 10, with their RHASH functions and
//     the HIT_SUITE_LIST octet encoding.
//   - HIT derivation as an ORCHIDv2, RFC 7343 §2, with the HIP Context ID of
//     RFC 7401 §3.2 (HITFromHI).
//   - The signature primitive of RFC 7401 §5.2.14, §5.2.15 and §6.4.2: RSA
//     signatures are RSASSA-PSS with SHA-256; ECDSA signatures are the raw
//     r|s octet strings of RFC 4754, with SHA-256 on P-256 and SHA-384 on
//     P-384. Building the signed bytes out of a packet (zeroing fields,
//     adjusting the header length) is the caller's job: Sign and Verify take
//     those bytes as they are.
//   - Private key storage as PKCS#8 PEM, in files of mode 0600.
//   - Keys held outside the process (TPM, secure element, PKCS#11, KMS)
//     through crypto.Signer (FromSigner): ECDSA signatures come back from
//     a crypto.Signer in ASN.1 DER (RFC 3279 §2.2.3) and are converted to
//     HIP's r|s; such keys cannot be exported.
//
// The package is sans-I/O like the rest of handshake/: it opens no sockets,
// starts no goroutines and reads no clock. The only functions that touch the
// file system are the explicit file helpers LoadFile, SaveFile and
// LoadOrCreate.
//
// HITs are plain [16]byte values here so that this package does not depend
// on the wire format; callers convert them with wire.HIT(x).
package hostid
