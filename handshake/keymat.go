package handshake

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha512"
	"errors"
	"fmt"
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
//
// The salt stays with the PRK: a rekey with a new Diffie-Hellman key
// derives its KEYMAT with the same #I | #J (RFC 7402 §6.10 step 2 with RFC
// 7401 §6.5), and both go when CLOSE sheds the keys. Both are held in the
// struct (sec), not in slices of their own: an association keeps its
// KEYMAT for as long as it lasts, and one allocation is smaller than three.
type keymat struct {
	newHash func() hash.Hash
	buf     []byte // expanded prefix of KEYMAT
	next    int
	info    [2 * len(wire.HIT{})]byte // sort(HIT-I | HIT-R)
	sec     []byte                    // PRK | #I | #J, each RHASH's length (one allocation, sized for the suite)
	prkLen  uint8
	ijLen   uint8 // of #I and of #J, which have one length (§5.2.5)
}

// maxRHASHLen is the longest RHASH of a HIT suite (hostid.Suite.Hash:
// SHA-384), hence of PRK, #I and #J.
const maxRHASHLen = sha512.Size384

var errKeymatExhausted = errors.New("handshake: KEYMAT exhausted; a new Diffie-Hellman exchange is needed")

func newKeymat(newHash func() hash.Hash, kij, i, j []byte, hitI, hitR wire.HIT) (*keymat, error) {
	if len(i) != len(j) || len(i) > maxRHASHLen {
		return nil, fmt.Errorf("handshake: #I of %d and #J of %d octets for KEYMAT", len(i), len(j))
	}
	k := &keymat{newHash: newHash, info: sortedHITs(hitI, hitR), ijLen: uint8(len(i))}
	var saltBuf [2 * maxRHASHLen]byte
	salt := append(append(saltBuf[:0], i...), j...)
	prk, err := hkdf.Extract(newHash, kij, salt)
	if err != nil {
		return nil, err
	}
	if len(prk) > maxRHASHLen {
		return nil, fmt.Errorf("handshake: RHASH of %d octets for KEYMAT", len(prk))
	}
	k.prkLen = uint8(len(prk))
	k.sec = append(append(make([]byte, 0, len(prk)+len(salt)), prk...), salt...)
	clear(prk)
	return k, nil
}

// prk is HKDF-Extract(#I | #J, Kij).
func (k *keymat) prk() []byte { return k.sec[:k.prkLen:k.prkLen] }

// puzzleI and puzzleJ are the #I and #J of the base exchange (nil without
// KEYMAT).
func (k *keymat) puzzleI() []byte {
	if k == nil {
		return nil
	}
	p := int(k.prkLen)
	i := p + int(k.ijLen)
	return k.sec[p:i:i]
}

func (k *keymat) puzzleJ() []byte {
	if k == nil {
		return nil
	}
	i, j := int(k.prkLen)+int(k.ijLen), int(k.prkLen)+2*int(k.ijLen)
	return k.sec[i:j:j]
}

// clear overwrites the secrets: PRK, a function of the Diffie-Hellman
// secret, the salt and what was expanded (the keys drawn from it are
// copies).
func (k *keymat) clear() {
	clear(k.sec)
	clear(k.buf)
}

// sortedHITs is sort(HIT-I | HIT-R) of RFC 7401 §6.5: the numerically
// smaller HIT first.
func sortedHITs(a, b wire.HIT) (out [2 * len(wire.HIT{})]byte) {
	if a.Compare(b) > 0 {
		a, b = b, a
	}
	copy(out[:], a[:])
	copy(out[len(a):], b[:])
	return out
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
		out, err := hkdf.Expand(k.newHash, k.prk(), string(k.info[:]), need)
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

// keyPair is a pair of HIP keys of one length, HOST_g's then HOST_l's
// (HIP-gl, HIP-lg: RFC 7401 §6.5), in one buffer.
type keyPair []byte

// gl and lg return HOST_g's and HOST_l's key, nil for an empty pair (as a
// draw of no octets is: NULL-ENCRYPT has no ENCRYPTED key).
func (p keyPair) gl() []byte {
	if len(p) == 0 {
		return nil
	}
	h := len(p) / 2
	return p[:h:h]
}

func (p keyPair) lg() []byte {
	if len(p) == 0 {
		return nil
	}
	return p[len(p)/2:]
}

// hipKeys are the four HIP keys of RFC 7401 §6.5, kept apart by
// lifetime: the HIP_MAC keys authenticate the association's packets for
// as long as it lasts, the ENCRYPTED keys only I2 and R2, the packets
// with ENCRYPTED, so they go with the base exchange (bexState).
type hipKeys struct {
	enc keyPair // encGL | encLG
	mac keyPair // macGL | macLG
}

// drawHIPKeys draws encGL, macGL, encLG and macLG, in that order.
func (k *keymat) drawHIPKeys(encLen, macLen int) (hipKeys, error) {
	b, err := k.at(k.next, 2*(encLen+macLen))
	if err != nil {
		return hipKeys{}, err
	}
	k.next += len(b)
	var h hipKeys
	if encLen > 0 {
		h.enc = append(append(make(keyPair, 0, 2*encLen), b[:encLen]...), b[encLen+macLen:2*encLen+macLen]...)
	}
	h.mac = append(append(make(keyPair, 0, 2*macLen), b[encLen:encLen+macLen]...), b[2*encLen+macLen:]...)
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
