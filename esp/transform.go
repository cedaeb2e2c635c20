package esp

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"hash"
	"sync"
	"sync/atomic"
)

// transform is the keyed cryptographic state of one SA direction: what
// Outbound and Inbound share. Everything in it is read-only after
// newTransform except the pool.
type transform struct {
	suite Suite
	ivLen uint8
	spi   uint32
	used  atomic.Bool // a packet used aead since the last trim
	salt  [saltLen]byte

	// GCM. The AES-GCM state (key schedule and GHASH tables, about 770
	// octets) is built on first use and dropped by trim when the SA sits
	// idle, so that the many idle associations of a relay or a server cost
	// only their keys; aead is nil meanwhile. The state is safe for
	// concurrent use, and a packet holds on to the one it loaded.
	aead   atomic.Pointer[aeadBox]
	gcmKey [16]byte

	// keyed is the state of the suites whose per-packet scratch carries a
	// key (CBC, HMAC); nil for AES-GCM, whose SAs share keylessPool. Kept
	// apart so that the many GCM SAs of a relay do not carry it: a
	// transform is 48 octets.
	keyed *keyedState
}

// keyedState is a CBC-HMAC SA's keys and its own scratch pool: each
// concurrent Seal/Open gets its own HMAC state, CBC mode with SetIV, and
// nonce/AAD buffers. The buffers must live on the heap because the cipher
// interfaces make their arguments escape; pooling keeps the hot path free
// of allocations.
type keyedState struct {
	block cipher.Block // CBC: safe for concurrent use
	auth  []byte       // HMAC key
	pool  sync.Pool
}

// keylessPool serves every SA whose scratch carries no keyed state.
var keylessPool = sync.Pool{New: func() any { return new(scratch) }}

// cbcMode is what cipher.NewCBCEncrypter/Decrypter return for AES: a
// BlockMode whose IV can be reset without allocating (crypto/tls relies on
// the same method).
type cbcMode interface {
	cipher.BlockMode
	SetIV([]byte)
}

type scratch struct {
	nonce [saltLen + gcmIVLen]byte
	aad   [12]byte // SPI | seq high | seq low (RFC 4106 §5, ESN form)
	hi    [4]byte  // ESN high bits appended for the ICV (RFC 4303 §3.3.2.1)
	blk   [16]byte // CBC IV generator input
	sum   [sha256.Size]byte
	mac   hash.Hash
	cbc   cbcMode
}

func newTransform(c *Config, decrypt bool) (*transform, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	t := &transform{suite: c.Suite, spi: c.SPI, ivLen: uint8(c.Suite.ivLen())}
	var block cipher.Block
	switch c.Suite {
	case SuiteAESGCM16:
		copy(t.gcmKey[:], c.EncKey[:16])
		copy(t.salt[:], c.EncKey[16:])
		if _, err := newGCM(t.gcmKey[:]); err != nil {
			return nil, err // the key is checked now, not on the first packet
		}
	case SuiteAES128CBCSHA256, SuiteAES256CBCSHA256:
		b, err := aes.NewCipher(c.EncKey)
		if err != nil {
			return nil, err
		}
		block = b
	}
	if len(c.AuthKey) == 0 && block == nil {
		return t, nil // keylessPool
	}
	k := &keyedState{block: block}
	if len(c.AuthKey) > 0 {
		k.auth = append([]byte(nil), c.AuthKey...)
	}
	var zeroIV [cbcIVLen]byte
	k.pool.New = func() any {
		s := new(scratch)
		if k.auth != nil {
			s.mac = hmac.New(sha256.New, k.auth)
		}
		if k.block != nil {
			if decrypt {
				s.cbc = cipher.NewCBCDecrypter(k.block, zeroIV[:]).(cbcMode)
			} else {
				s.cbc = cipher.NewCBCEncrypter(k.block, zeroIV[:]).(cbcMode)
			}
		}
		return s
	}
	t.keyed = k
	return t, nil
}

type aeadBox struct{ cipher.AEAD }

func newGCM(key []byte) (*aeadBox, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	// The IV is supplied explicitly (the sequence number), so the plain
	// GCM constructor is the right one: RFC 4106 §3.1 lets the sender use
	// a counter as the IV.
	g, err := cipher.NewGCM(b)
	if err != nil {
		return nil, err
	}
	return &aeadBox{g}, nil
}

// gcm returns the AES-GCM state, building it if an earlier trim dropped it
// (or no packet came yet): the one allocation of an idle SA's next packet.
func (t *transform) gcm() cipher.AEAD {
	if !t.used.Load() {
		t.used.Store(true) // read first: no shared write per packet
	}
	if a := t.aead.Load(); a != nil {
		return a.AEAD
	}
	a, err := newGCM(t.gcmKey[:])
	if err != nil {
		panic("esp: AES key checked at setup fails: " + err.Error())
	}
	if !t.aead.CompareAndSwap(nil, a) {
		return t.aead.Load().AEAD // another packet built it first
	}
	return a.AEAD
}

// trim drops the AES-GCM state if no packet used it since the previous
// trim, and reports whether it did.
func (t *transform) trim() bool {
	if t.used.Swap(false) || t.aead.Load() == nil {
		return false
	}
	t.aead.Store(nil)
	return true
}

func (t *transform) get() *scratch {
	if t.keyed != nil {
		return t.keyed.pool.Get().(*scratch)
	}
	return keylessPool.Get().(*scratch)
}

func (t *transform) put(s *scratch) {
	if t.keyed != nil {
		t.keyed.pool.Put(s)
		return
	}
	keylessPool.Put(s)
}

// gcmParams fills the nonce (salt | explicit IV, RFC 4106 §4) and the ESN
// AAD (SPI | seq high | seq low, RFC 4106 §5) in s.
func (t *transform) gcmParams(s *scratch, iv []byte, seq uint64) {
	copy(s.nonce[:saltLen], t.salt[:])
	copy(s.nonce[saltLen:], iv)
	binary.BigEndian.PutUint32(s.aad[0:], t.spi)
	binary.BigEndian.PutUint64(s.aad[4:], seq)
}

// icv computes HMAC-SHA-256 over the packet's authenticated part followed
// by the ESN high-order bits (RFC 4303 §2.2.1, §3.3.2.1: "appended after
// the Next Header field", i.e. after the covered bytes, not transmitted)
// and leaves the full 32-octet MAC in s.sum. RFC 4868 §2.3 truncates it
// to the first 16 octets.
func (t *transform) icv(s *scratch, covered []byte, seq uint64) []byte {
	binary.BigEndian.PutUint32(s.hi[:], uint32(seq>>32))
	s.mac.Reset()
	s.mac.Write(covered)
	s.mac.Write(s.hi[:])
	return s.mac.Sum(s.sum[:0])[:icvLen]
}

// icvEqual compares ICVs in constant time (RFC 4868 §2.3 ICV comparison
// must not leak where the first difference is).
func icvEqual(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
