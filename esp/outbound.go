package esp

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"io"
	"math"
	"sync/atomic"
)

// Outbound is the sending side of an ESP SA. Its methods are safe for
// concurrent use.
type Outbound struct {
	t          *transform
	ivGen      cipher.Block // CBC only: AES under a per-SA random key
	rekeyAfter uint64
	seq        atomic.Uint64 // last sequence number used; 0 before the first
}

// NewOutbound validates c and returns the sending SA. For the CBC suites it
// reads 16 octets from c.Rand (crypto/rand when nil) as the IV key; this is
// key setup, done once, not per packet.
func NewOutbound(c Config) (*Outbound, error) {
	t, err := newTransform(&c, false)
	if err != nil {
		return nil, err
	}
	o := &Outbound{t: t, rekeyAfter: c.RekeyAfter}
	if o.rekeyAfter == 0 {
		o.rekeyAfter = DefaultRekeyAfter
	}
	if t.keyed != nil && t.keyed.block != nil {
		r := c.Rand
		if r == nil {
			r = rand.Reader
		}
		var k [16]byte
		if _, err := io.ReadFull(r, k[:]); err != nil {
			return nil, err
		}
		if o.ivGen, err = aes.NewCipher(k[:]); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// SPI returns the SA's SPI.
func (o *Outbound) SPI() uint32 { return o.t.spi }

// Trim is Inbound.Trim for the sending side.
func (o *Outbound) Trim() bool { return o.t.trim() }

// Suite returns the SA's transform suite.
func (o *Outbound) Suite() Suite { return o.t.suite }

// Seq returns the last sequence number sealed (0 before the first packet).
func (o *Outbound) Seq() uint64 { return o.seq.Load() }

// NeedsRekey reports whether Config.RekeyAfter packets have been sealed and
// the caller should start a rekey (RFC 7402 §3.3.6, §6.8).
func (o *Outbound) NeedsRekey() bool { return o.seq.Load() >= o.rekeyAfter }

// PayloadOffset is where Seal puts the payload in the free part of its
// dst: a payload assembled at dst[len(dst)+PayloadOffset():] is encrypted
// in place, without a copy.
func (o *Outbound) PayloadOffset() int { return headerLen + int(o.t.ivLen) }

// Overhead returns how many octets Seal adds to a payloadLen-octet payload.
func (o *Outbound) Overhead(payloadLen int) int { return o.t.suite.Overhead(payloadLen) }

// setSeq sets the last-used sequence number (tests reach it through
// export_test.go to exercise the 2^32 and 2^64 boundaries).
func (o *Outbound) setSeq(s uint64) { o.seq.Store(s) }

// nextSeq reserves the next sequence number. The first packet gets 1
// (RFC 4303 §3.3.3); the counter never cycles: after 2^64-1 every call
// fails until the SA is replaced.
func (o *Outbound) nextSeq() (uint64, error) {
	for {
		cur := o.seq.Load()
		if cur == math.MaxUint64 {
			return 0, ErrSequenceExhausted
		}
		if o.seq.CompareAndSwap(cur, cur+1) {
			return cur + 1, nil
		}
	}
}

// Seal appends one ESP packet carrying payload with Next Header nextHeader
// to dst and returns the extended slice, as cipher.AEAD.Seal does:
//
//	SPI | Seq (low 32 bits) | IV | E(payload | padding | Pad Length | Next Header) | ICV
//
// When cap(dst)-len(dst) >= Overhead(len(payload))+len(payload) nothing is
// allocated. payload may overlap the free part of dst (for example, the
// caller assembled it at dst[len(dst)+headerLen+ivLen:] to save a copy).
func (o *Outbound) Seal(dst, payload []byte, nextHeader uint8) ([]byte, error) {
	seq, err := o.nextSeq()
	if err != nil {
		return dst, err
	}
	t := o.t
	encLen := t.suite.encLen(len(payload))
	bodyOff := headerLen + int(t.ivLen)
	ret, out := grow(dst, bodyOff+encLen+icvLen)
	body := out[bodyOff : bodyOff+encLen]

	// Payload first: it may overlap the header area of out, which is
	// written next. copy is a memmove, so any overlap is safe.
	if len(payload) > 0 && &body[0] != &payload[0] {
		copy(body, payload)
	}
	// RFC 4303 §2.4: default padding contents are 1, 2, 3, ...
	padLen := encLen - len(payload) - trailerLen
	for i := range padLen {
		body[len(payload)+i] = byte(i + 1)
	}
	body[encLen-2] = byte(padLen)
	body[encLen-1] = nextHeader

	binary.BigEndian.PutUint32(out[0:], t.spi)
	binary.BigEndian.PutUint32(out[4:], uint32(seq)) // RFC 4303 §2.2.1: low-order 32 bits only
	iv := out[headerLen:bodyOff]

	s := t.get()
	switch t.suite {
	case SuiteAESGCM16:
		// RFC 4106 §3.1: the 8-octet IV must never repeat under a key;
		// the 64-bit sequence number is such a counter.
		binary.BigEndian.PutUint64(iv, seq)
		t.gcmParams(s, iv, seq)
		t.gcm().Seal(body[:0], s.nonce[:], body, s.aad[:])
	case SuiteAES128CBCSHA256, SuiteAES256CBCSHA256:
		// RFC 3602 §3 wants an unpredictable IV. E_ivkey(0^64 | seq) is
		// unpredictable without ivkey and unique per packet, and costs one
		// block encryption instead of a read from the system RNG.
		clear(s.blk[:8])
		binary.BigEndian.PutUint64(s.blk[8:], seq)
		o.ivGen.Encrypt(iv, s.blk[:])
		s.cbc.SetIV(iv)
		s.cbc.CryptBlocks(body, body)
		copy(out[bodyOff+encLen:], t.icv(s, out[:bodyOff+encLen], seq))
	case SuiteNullSHA256:
		copy(out[bodyOff+encLen:], t.icv(s, out[:bodyOff+encLen], seq))
	}
	t.put(s)
	return ret, nil
}
