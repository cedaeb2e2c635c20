package hostid

import (
	"errors"
	"fmt"
	"io/fs"
)

// Errors returned by this package. They are wrapped with detail; test them
// with errors.Is.
var (
	// ErrUnsupportedAlgorithm: the HI algorithm is not one this package
	// implements (DSA, ECDSA_LOW, EdDSA, or an unknown value).
	ErrUnsupportedAlgorithm = errors.New("hostid: unsupported host identity algorithm")
	// ErrUnsupportedCurve: the ECDSA curve is not NIST P-256 or P-384.
	ErrUnsupportedCurve = errors.New("hostid: unsupported ECDSA curve")
	// ErrMalformedHostIdentity: the Host Identity field does not follow the
	// encoding of its algorithm (lengths, leading zeros, point format).
	ErrMalformedHostIdentity = errors.New("hostid: malformed host identity")
	// ErrInvalidKey: the encoding is well formed but the key is not usable
	// (point not on the curve, bad RSA exponent or modulus).
	ErrInvalidKey = errors.New("hostid: invalid public key")
	// ErrKeySize: an RSA modulus outside the accepted range.
	ErrKeySize = errors.New("hostid: RSA key size out of range")
	// ErrAlgorithmMismatch: the SIG alg of a signature is not the HI
	// algorithm of the key it is checked against.
	ErrAlgorithmMismatch = errors.New("hostid: signature algorithm does not match host identity")
	// ErrInvalidSignature: the signature has the wrong length or does not
	// verify.
	ErrInvalidSignature = errors.New("hostid: invalid signature")
	// ErrUnsupportedKeyType: Generate was given an unknown KeyType, or a
	// stored key is of a kind this package cannot use as a host identity.
	ErrUnsupportedKeyType = errors.New("hostid: unsupported key type")
	// ErrNotExportable: MarshalPEM or SaveFile was given a key held by an
	// external crypto.Signer (FromSigner), whose private part this
	// process does not have.
	ErrNotExportable = errors.New("hostid: private key cannot be exported")
	// ErrInvalidPEM: no usable private key in the PEM input.
	ErrInvalidPEM = errors.New("hostid: no usable private key in PEM data")
	// ErrInsecurePermissions: a private key file can be read or written by
	// its group or by others. The error is a *PermissionError.
	ErrInsecurePermissions = errors.New("hostid: private key file permissions are too open")
)

// PermissionError reports a private key file whose mode grants access to
// group or others, as OpenSSH refuses such files. Fix it with
// chmod 600 Path.
type PermissionError struct {
	Path string
	Mode fs.FileMode
}

func (e *PermissionError) Error() string {
	return fmt.Sprintf("hostid: private key file %s has mode %#o: it must not be accessible by group or others (chmod 600 %s)",
		e.Path, uint32(e.Mode.Perm()), e.Path)
}

// Is makes errors.Is(err, ErrInsecurePermissions) true.
func (e *PermissionError) Is(target error) bool { return target == ErrInsecurePermissions }
