package handshake

import (
	"crypto/ecdh"
	"errors"
	"fmt"
	"io"
	"math/big"

	"hipnet.dev/handshake/wire"
)

// dhGroup is one Diffie-Hellman group of RFC 7401 §5.2.7.
type dhGroup interface {
	id() uint8
	// generate returns a fresh ephemeral key pair.
	generate(rand io.Reader) (dhKey, error)
	// secretLen is the length of Kij in octets.
	secretLen() int
}

// dhKey is an ephemeral private key with its encoded public value.
type dhKey interface {
	group() uint8
	// public is the Public Value of the DIFFIE_HELLMAN parameter.
	public() []byte
	// shared computes Kij from the peer's Public Value, validating it
	// first (RFC 7401 §5.3.2: small-subgroup checks of RFC 2785 §3.1).
	shared(peer []byte) ([]byte, error)
}

var errBadPublicValue = errors.New("handshake: invalid Diffie-Hellman public value")

// lookupGroup returns the implementation of a DH Group ID, or nil.
func lookupGroup(id uint8) dhGroup {
	switch id {
	case wire.DHGroupP256:
		return ecGroup{gid: id, curve: ecdh.P256(), size: 32}
	case wire.DHGroupP384:
		return ecGroup{gid: id, curve: ecdh.P384(), size: 48}
	case wire.DHGroupMODP1536:
		return modp1536
	case wire.DHGroupMODP3072:
		return modp3072
	}
	return nil
}

// ecGroup is a NIST curve ECDH group (IDs 7, 8). The Public Value is the
// point as x|y without the SEC1 0x04 prefix (RFC 5903 §7, the layout the
// interop captures show: 64 octets for P-256), and Kij is the
// x-coordinate (RFC 5903 §7).
type ecGroup struct {
	gid   uint8
	curve ecdh.Curve
	size  int
}

func (g ecGroup) id() uint8      { return g.gid }
func (g ecGroup) secretLen() int { return g.size }

func (g ecGroup) generate(rand io.Reader) (dhKey, error) {
	k, err := g.curve.GenerateKey(rand)
	if err != nil {
		return nil, err
	}
	return &ecKey{g: g, priv: k, pub: k.PublicKey().Bytes()[1:]}, nil
}

type ecKey struct {
	g    ecGroup
	priv *ecdh.PrivateKey
	pub  []byte
}

func (k *ecKey) group() uint8   { return k.g.gid }
func (k *ecKey) public() []byte { return k.pub }

func (k *ecKey) shared(peer []byte) ([]byte, error) {
	var buf [1 + 2*48]byte
	switch len(peer) {
	case 2 * k.g.size:
		buf[0] = 4
		copy(buf[1:], peer)
		peer = buf[:1+2*k.g.size]
	case 1 + 2*k.g.size: // tolerate the SEC1 prefix
	default:
		return nil, fmt.Errorf("%w: %d octets for group %d", errBadPublicValue, len(peer), k.g.gid)
	}
	// NewPublicKey checks that the point is on the curve; NIST curves have
	// co-factor 1, as RFC 7401 §5.2.7 requires.
	pk, err := k.g.curve.NewPublicKey(peer)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBadPublicValue, err)
	}
	return k.priv.ECDH(pk)
}

// modpGroup is a MODP group of RFC 3526 (IDs 3 and 4).
type modpGroup struct {
	gid uint8
	p   *big.Int // a safe prime: (p-1)/2 is prime too
	len int
}

func newMODP(id uint8, hexP string) *modpGroup {
	p, ok := new(big.Int).SetString(hexP, 16)
	if !ok {
		panic("handshake: bad MODP prime")
	}
	return &modpGroup{gid: id, p: p, len: (p.BitLen() + 7) / 8}
}

func (g *modpGroup) id() uint8      { return g.gid }
func (g *modpGroup) secretLen() int { return g.len }

func (g *modpGroup) generate(rand io.Reader) (dhKey, error) {
	// A 2*security-strength exponent suffices (NIST SP 800-56A); 384 bits
	// covers both groups and keeps the exponentiation fast.
	b := make([]byte, 48)
	if _, err := io.ReadFull(rand, b); err != nil {
		return nil, err
	}
	x := new(big.Int).SetBytes(b)
	y := new(big.Int).Exp(big.NewInt(2), x, g.p)
	return &modpKey{g: g, x: x, pub: y.FillBytes(make([]byte, g.len))}, nil
}

type modpKey struct {
	g   *modpGroup
	x   *big.Int
	pub []byte
}

func (k *modpKey) group() uint8   { return k.g.gid }
func (k *modpKey) public() []byte { return k.pub }

func (k *modpKey) shared(peer []byte) ([]byte, error) {
	if len(peer) != k.g.len {
		return nil, fmt.Errorf("%w: %d octets for group %d", errBadPublicValue, len(peer), k.g.gid)
	}
	y := new(big.Int).SetBytes(peer)
	// RFC 2785 §3.1: 1 < y < p-1 and y^q = 1 mod p. With p = 2q+1 a safe
	// prime, y^q mod p is the Legendre symbol of y (Euler's criterion), so
	// the second test is the Jacobi symbol's, which costs microseconds
	// where the exponentiation by the 1535-bit q cost more than the
	// agreement itself: work that anyone with a solved puzzle could ask of
	// a Responder.
	pm1 := new(big.Int).Sub(k.g.p, big.NewInt(1))
	if y.Cmp(big.NewInt(1)) <= 0 || y.Cmp(pm1) >= 0 {
		return nil, errBadPublicValue
	}
	if big.Jacobi(y, k.g.p) != 1 {
		return nil, errBadPublicValue
	}
	z := new(big.Int).Exp(y, k.x, k.g.p)
	// Kij is left-padded to the size of the prime so that both sides
	// feed HKDF identical octets.
	return z.FillBytes(make([]byte, k.g.len)), nil
}

// RFC 3526 §2 (1536-bit MODP group, ID 3, the group every HIPv2 host MUST
// implement) and §4 (3072-bit, ID 4).
var (
	modp1536 = newMODP(wire.DHGroupMODP1536,
		"FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1"+
			"29024E088A67CC74020BBEA63B139B22514A08798E3404DD"+
			"EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245"+
			"E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"+
			"EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3D"+
			"C2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F"+
			"83655D23DCA3AD961C62F356208552BB9ED529077096966D"+
			"670C354E4ABC9804F1746C08CA237327FFFFFFFFFFFFFFFF")
	modp3072 = newMODP(wire.DHGroupMODP3072,
		"FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1"+
			"29024E088A67CC74020BBEA63B139B22514A08798E3404DD"+
			"EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245"+
			"E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"+
			"EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3D"+
			"C2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F"+
			"83655D23DCA3AD961C62F356208552BB9ED529077096966D"+
			"670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"+
			"E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9"+
			"DE2BCBF6955817183995497CEA956AE515D2261898FA0510"+
			"15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64"+
			"ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7"+
			"ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6B"+
			"F12FFA06D98A0864D87602733EC86A64521F2B18177B200C"+
			"BBE117577A615D6C770988C0BAD946E208E24FA074E5AB31"+
			"43DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF")
)
