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
	spi   uint32
	ivLen int

	// GCM. The AES-GCM state (key schedule and GHASH tables, about 770
	// octets) is built on first use and dropped by trim when the SA sits
	// idle, so that the many idle associations of a relay or a server cost
	// only their keys; aead is nil meanwhile. The state is safe for
	// concurrent use, and a packet holds on to the one it loaded.
	aead   atomic.Pointer[aeadBox]
	gcmKey [16]byte
	used   atomic.Bool // a packet used aead since the last trim
	salt   [saltLen]byte
	block  cipher.Block // CBC: safe for concurrent use
	auth   []byte       // HMAC key

	// pool hands each concurrent Seal/Open its own scratch: HMAC state,
	// CBC mode with SetIV, and nonce/AAD buffers. The buffers must live on
	// the heap because the cipher interfaces make their arguments escape;
	// pooling keeps the hot path free of allocations. Only SAs with keyed
	// scratch (HMAC, CBC) have a pool of their own: AES-GCM's scratch holds
	// no key, so GCM SAs share keylessPool, and an idle GCM association
	// costs no per-SA pool memory (a sync.Pool keeps a padded slot per P).
	pool *sync.Pool
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
	t := &transform{suite: c.Suite, spi: c.SPI, ivLen: c.Suite.ivLen()}
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
		t.block = b
	}
	if len(c.AuthKey) > 0 {
		t.auth = append([]byte(nil), c.AuthKey...)
	}
	if t.auth == nil && t.block == nil {
		t.pool = &keylessPool
		return t, nil
	}
	var zeroIV [cbcIVLen]byte
	t.pool = &sync.Pool{}
	t.pool.New = func() any {
		s := new(scratch)
		if t.auth != nil {
			s.mac = hmac.New(sha256.New, t.auth)
		}
		if t.block != nil {
			if decrypt {
				s.cbc = cipher.NewCBCDecrypter(t.block, zeroIV[:]).(cbcMode)
			} else {
				s.cbc = cipher.NewCBCEncrypter(t.block, zeroIV[:]).(cbcMode)
			}
		}
		return s
	}
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

func (t *transform) get() *scratch  { return t.pool.Get().(*scratch) }
func (t *transform) put(s *scratch) { t.pool.Put(s) }

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
