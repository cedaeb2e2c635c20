package hipnet

import (
	"crypto"
	"crypto/rand"

	"hipnet.dev/handshake/hostid"
)

// Identity is a host's key pair. Its HIT names the host.
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
)

// GenerateIdentity creates a new ECDSA P-256 identity.
func GenerateIdentity() (*Identity, error) { return GenerateIdentityOf(ECDSAP256) }

// GenerateIdentityOf creates a new identity of the given type.
func GenerateIdentityOf(t KeyType) (*Identity, error) {
	k, err := hostid.Generate(t, rand.Reader)
	if err != nil {
		return nil, err
	}
	return &Identity{key: k}, nil
}

// LoadIdentity reads a PEM private key file. A file readable by group or
// others is refused, as OpenSSH does.
func LoadIdentity(path string) (*Identity, error) {
	k, err := hostid.LoadFile(path)
	if err != nil {
		return nil, err
	}
	return &Identity{key: k}, nil
}

// LoadOrCreateIdentity loads the identity at path, creating an ECDSA
// P-256 one (PEM, file mode 0600) if the file does not exist.
func LoadOrCreateIdentity(path string) (*Identity, error) {
	k, _, err := hostid.LoadOrCreate(path, ECDSAP256, rand.Reader)
	if err != nil {
		return nil, err
	}
	return &Identity{key: k}, nil
}

// Save writes the identity as PEM with file mode 0600.
func (id *Identity) Save(path string) error { return hostid.SaveFile(path, id.key) }

// HIT returns the identity's HIT.
func (id *Identity) HIT() HIT { return HIT(id.key.HIT()) }

// Public returns the public key.
func (id *Identity) Public() crypto.PublicKey { return id.key.Public().CryptoPublicKey() }

// String describes the key and its HIT, never the private part.
func (id *Identity) String() string { return id.key.String() }
