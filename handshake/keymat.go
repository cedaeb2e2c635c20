package handshake

import (
	"crypto/hkdf"
	"crypto/hmac"
	"errors"
	"hash"

	"hipnet.dev/handshake/wire"
)

// keymat is the HIP keying material of RFC 7401 §6.5: HKDF (RFC 5869)
// with the Responder's RHASH, salt = #I | #J, IKM = Kij and
// info = sort(HIT-I | HIT-R). RFC 7401 omits the formula line; we read it
// as HKDF-Extract(salt, Kij) followed by HKDF-Expand(PRK, info, L), the
// reading that re-derives the keys of the independent interop captures.
//
// Keys are drawn in order; next is the index of the first octet not yet
// drawn, which ESP_INFO's KEYMAT Index refers to (RFC 7402 §5.1.1).
type keymat struct {
	newHash func() hash.Hash
	prk     []byte
	info    []byte
	buf     []byte // expanded prefix of KEYMAT
	next    int
}

var errKeymatExhausted = errors.New("handshake: KEYMAT exhausted; a new Diffie-Hellman exchange is needed")

func newKeymat(newHash func() hash.Hash, kij, i, j []byte, hitI, hitR wire.HIT) (*keymat, error) {
	salt := make([]byte, 0, len(i)+len(j))
	salt = append(append(salt, i...), j...)
	prk, err := hkdf.Extract(newHash, kij, salt)
	if err != nil {
		return nil, err
	}
	return &keymat{newHash: newHash, prk: prk, info: sortedHITs(hitI, hitR)}, nil
}

// sortedHITs is sort(HIT-I | HIT-R) of RFC 7401 §6.5: the numerically
// smaller HIT first.
func sortedHITs(a, b wire.HIT) []byte {
	if a.Compare(b) > 0 {
		a, b = b, a
	}
	out := make([]byte, 0, 32)
	out = append(out, a[:]...)
	return append(out, b[:]...)
}

// at returns n octets of KEYMAT starting at off, expanding as needed.
func (k *keymat) at(off, n int) ([]byte, error) {
	need := off + n
	if need > 255*k.newHash().Size() || need > 0xffff {
		return nil, errKeymatExhausted
	}
	if need > len(k.buf) {
		// HKDF-Expand output is a prefix-stable stream: expanding to a
		// longer length yields the same leading octets.
		out, err := hkdf.Expand(k.newHash, k.prk, string(k.info), need)
		if err != nil {
			return nil, err
		}
		k.buf = out
	}
	return k.buf[off:need], nil
}

// draw takes the next n octets.
func (k *keymat) draw(n int) ([]byte, error) {
	b, err := k.at(k.next, n)
	if err != nil {
		return nil, err
	}
	k.next += n
	return append([]byte(nil), b...), nil
}

// hipKeys are the four HIP keys of RFC 7401 §6.5 in drawing order.
type hipKeys struct {
	encGL, macGL []byte // HOST_g's ENCRYPTED key and outgoing HIP_MAC key
	encLG, macLG []byte // HOST_l's
}

func (k *keymat) drawHIPKeys(encLen, macLen int) (hipKeys, error) {
	var h hipKeys
	var err error
	for _, p := range []*[]byte{&h.encGL, &h.macGL, &h.encLG, &h.macLG} {
		n := encLen
		if p == &h.macGL || p == &h.macLG {
			n = macLen
		}
		if *p, err = k.draw(n); err != nil {
			return h, err
		}
	}
	return h, nil
}

// espKeys are the four ESP keys of RFC 7402 §7 drawn from a KEYMAT index.
type espKeys struct {
	encGL, authGL []byte // SA-gl: HOST_g's outgoing traffic
	encLG, authLG []byte // SA-lg: HOST_l's outgoing traffic
}

func (k *keymat) espKeysAt(index, encLen, authLen int) (espKeys, error) {
	var e espKeys
	total := 2 * (encLen + authLen)
	b, err := k.at(index, total)
	if err != nil {
		return e, err
	}
	b = append([]byte(nil), b...)
	e.encGL, b = b[:encLen:encLen], b[encLen:]
	e.authGL, b = b[:authLen:authLen], b[authLen:]
	e.encLG, b = b[:encLen:encLen], b[encLen:]
	e.authLG = b[:authLen:authLen]
	if index+total > k.next {
		k.next = index + total
	}
	return e, nil
}

// macOf computes an HMAC with the association's RHASH.
func macOf(newHash func() hash.Hash, key []byte, parts ...[]byte) []byte {
	m := hmac.New(newHash, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}
