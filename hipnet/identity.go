package hipnet

import (
	"crypto"
	"crypto/rand"
	"strings"

	"hipnet.dev/handshake/hostid"
)

// Identity is a host's key pair. Its HIT names the host.
//
// The private key is in memory (GenerateIdentity, LoadIdentity,
// ParseIdentityPEM) or held outside the process, in a TPM, a secure
// element, a PKCS#11 token or a cloud KMS, and reached through a
// crypto.Signer (IdentityFromSigner).
type Identity struct {
	key *hostid.PrivateKey
}

// KeyType selects the algorithm of a new identity.
type KeyType = hostid.KeyType

// Key types. ECDSA P-256 is the default: fast with Go's assembly.
const (
	ECDSAP256 = hostid.ECDSAP256
	ECDSAP384 = hostid.ECDSAP384
	RSA2048   = hostid.RSA2048
	RSA3072   = hostid.RSA3072
	RSA4096   = hostid.RSA4096
)

// ErrNotExportable is returned, wrapped, by Identity.MarshalPEM and
// Identity.Save for an identity from IdentityFromSigner: its private key
// is not in this process.
var ErrNotExportable = hostid.ErrNotExportable

// GenerateIdentity creates a new ECDSA P-256 identity.
func GenerateIdentity() (*Identity, error) { return GenerateIdentityOf(ECDSAP256) }

// GenerateIdentityOf creates a new identity of the given type.
func GenerateIdentityOf(t KeyType) (*Identity, error) {
	k, err := hostid.Generate(t, rand.Reader)
	if err != nil {
		return nil, identityErr(err)
	}
	return &Identity{key: k}, nil
}

// IdentityFromSigner makes an identity of a private key held elsewhere
// (a TPM, a secure element, a PKCS#11 token, a cloud KMS) that Go code
// reaches as a crypto.Signer. Its Public method must return an
// *ecdsa.PublicKey on NIST P-256 or P-384 or an *rsa.PublicKey of 2048 to
// 8192 bits; other keys, Ed25519 among them, are refused with an error
// naming the key's type or curve.
//
// The node signs its HIP packets (I2, R1, R2, UPDATE, ...) and its TLS
// handshakes through s.Sign, so s must be safe for concurrent use and
// should answer in milliseconds, not seconds: every base exchange waits
// for it. ECDSA signers are asked for SHA-256 (P-256) or SHA-384 (P-384)
// signatures in crypto.Signer's ASN.1 form, RSA signers for RSASSA-PSS
// with SHA-256. Each signature is checked with the public key before it is
// sent, so a signer that signs with another key fails with an error rather
// than with peers that drop every packet.
//
// The HIT is the same as for the same key loaded from a PEM file. The
// identity cannot be exported: MarshalPEM and Save give ErrNotExportable.
// An *ecdsa.PrivateKey or *rsa.PrivateKey passed here is an ordinary
// in-memory identity, exportable like one from ParseIdentityPEM.
func IdentityFromSigner(s crypto.Signer) (*Identity, error) {
	k, err := hostid.FromSigner(s)
	if err != nil {
		return nil, identityErr(err)
	}
	return &Identity{key: k}, nil
}

// ParseIdentityPEM decodes an identity from PEM: a PKCS#8 "PRIVATE KEY"
// block as MarshalPEM and Save write, or an "EC PRIVATE KEY" (SEC 1) or
// "RSA PRIVATE KEY" (PKCS#1) block as other tools write. Encrypted keys
// are refused.
func ParseIdentityPEM(b []byte) (*Identity, error) {
	k, err := hostid.ParsePEM(b)
	if err != nil {
		return nil, identityErr(err)
	}
	return &Identity{key: k}, nil
}

// LoadIdentity reads a PEM private key file. A file readable by group or
// others is refused, as OpenSSH does.
func LoadIdentity(path string) (*Identity, error) {
	k, err := hostid.LoadFile(path)
	if err != nil {
		return nil, identityErr(err)
	}
	return &Identity{key: k}, nil
}

// LoadOrCreateIdentity loads the identity at path, creating an ECDSA
// P-256 one (PEM, file mode 0600, missing directories 0700) if the file
// does not exist. It does not say which happened; use EnsureIdentity to
// know, for instance to log that the host has a new HIT.
func LoadOrCreateIdentity(path string) (*Identity, error) {
	id, _, err := EnsureIdentity(path)
	return id, err
}

// EnsureIdentity is LoadOrCreateIdentity that reports whether it created
// the file. A new key is a new HIT: peers that knew the host by its old
// one no longer recognise it, so a caller should tell its operator, e.g.
//
//	id, created, err := hipnet.EnsureIdentity(path)
//	if created {
//		log.Info("created a new host identity", "path", path, "hit", id.HIT())
//	}
//
// Two processes that race to create the file both end up with the one
// that reached the disk first; only that one reports created.
func EnsureIdentity(path string) (id *Identity, created bool, err error) {
	k, created, err := hostid.LoadOrCreate(path, ECDSAP256, rand.Reader)
	if err != nil {
		return nil, false, identityErr(err)
	}
	return &Identity{key: k}, created, nil
}

// MarshalPEM encodes the identity's private key as an unencrypted PKCS#8
// "PRIVATE KEY" PEM block, the format of Save and ParseIdentityPEM. An
// identity from IdentityFromSigner gives ErrNotExportable.
func (id *Identity) MarshalPEM() ([]byte, error) {
	b, err := hostid.MarshalPEM(id.key)
	if err != nil {
		return nil, identityErr(err)
	}
	return b, nil
}

// Save writes the identity as PEM with file mode 0600. An identity from
// IdentityFromSigner gives ErrNotExportable.
func (id *Identity) Save(path string) error { return identityErr(hostid.SaveFile(path, id.key)) }

// HIT returns the identity's HIT.
func (id *Identity) HIT() HIT { return HIT(id.key.HIT()) }

// Public returns the public key.
func (id *Identity) Public() crypto.PublicKey { return id.key.Public().CryptoPublicKey() }

// String describes the key and its HIT, never the private part.
func (id *Identity) String() string { return id.key.String() }

// identityError presents an error from the host identity code under
// hipnet's name: its message starts "hipnet: identity:" and does not name
// the internal package. errors.Is and errors.As see the error it wraps
// (ErrNotExportable, fs.ErrNotExist, the file permission error).
type identityError struct{ err error }

func identityErr(err error) error {
	if err == nil {
		return nil
	}
	return &identityError{err}
}

func (e *identityError) Error() string {
	return "hipnet: identity: " + strings.ReplaceAll(e.err.Error(), "hostid: ", "")
}

func (e *identityError) Unwrap() error { return e.err }
