package esp

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
)

// Inbound is the receiving side of an ESP SA. Its methods are safe for
// concurrent use.
type Inbound struct {
	t *transform

	mu  sync.Mutex
	win replayWindow

	ok, replayed, tooOld, authFailed, malformed, badSPI atomic.Uint64
}

// InboundStats counts what Open did with the packets it was given.
type InboundStats struct {
	OK         uint64 // authenticated, decrypted, window updated
	Replayed   uint64 // ErrReplay
	TooOld     uint64 // ErrTooOld: left of the window
	AuthFailed uint64 // ErrAuth
	Malformed  uint64 // ErrShortPacket, ErrMalformed
	BadSPI     uint64 // ErrBadSPI: not this SA's SPI
}

// NewInbound validates c and returns the receiving SA.
func NewInbound(c Config) (*Inbound, error) {
	t, err := newTransform(&c, true)
	if err != nil {
		return nil, err
	}
	return &Inbound{t: t, win: newReplayWindow(c.ReplayWindow)}, nil
}

// SPI returns the SA's SPI.
func (i *Inbound) SPI() uint32 { return i.t.spi }

// Trim frees the SA's AES-GCM state if no packet used it since the
// previous Trim (or since the SA was made), and reports whether it did; the
// next packet rebuilds it. Calling it periodically makes idle SAs cost
// their keys and anti-replay window only. A no-op for the CBC suites.
func (i *Inbound) Trim() bool { return i.t.trim() }

// Suite returns the SA's transform suite.
func (i *Inbound) Suite() Suite { return i.t.suite }

// ReplayWindow returns the effective anti-replay window in packets.
func (i *Inbound) ReplayWindow() int { return int(i.win.size) }

// Highest returns the highest sequence number authenticated so far (0
// before the first packet).
func (i *Inbound) Highest() uint64 {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.win.top
}

// Stats returns the packet counters.
func (i *Inbound) Stats() InboundStats {
	return InboundStats{
		OK:         i.ok.Load(),
		Replayed:   i.replayed.Load(),
		TooOld:     i.tooOld.Load(),
		AuthFailed: i.authFailed.Load(),
		Malformed:  i.malformed.Load(),
		BadSPI:     i.badSPI.Load(),
	}
}

// setHighest empties the window and moves its top to t (tests reach it
// through export_test.go to exercise ESN subspace boundaries).
func (i *Inbound) setHighest(t uint64) {
	i.mu.Lock()
	i.win.reset(t)
	i.mu.Unlock()
}

// PeekSPI returns the SPI of an ESP packet for SA lookup, and false if
// the packet is too short to be ESP or carries the zero SPI that marks a
// non-ESP packet on a shared UDP port (RFC 3948 §2.2, RFC 5770 §5.1).
func PeekSPI(packet []byte) (uint32, bool) {
	if len(packet) < headerLen {
		return 0, false
	}
	spi := binary.BigEndian.Uint32(packet)
	return spi, spi != 0
}

// Open authenticates and decrypts one ESP packet (RFC 4303 §3.4) and
// appends the payload to dst, returning the extended slice and the Next
// Header value. Padding is checked and removed. A Next Header of
// NextHeaderNone marks a dummy packet (RFC 4303 §2.6) the caller drops.
//
// Order of checks (RFC 4303 §3.4.3): the sequence number is reconstructed
// (ESN, Appendix A2.2) and checked against the replay window first; then
// the ICV is verified; the window advances only for a packet whose ICV
// verified and whose padding is well formed, so a forged packet can never
// move it.
//
// dst may overlap packet: pass packet[:0] to decrypt in place (the payload
// then starts at packet[0]). Nothing is allocated when dst has room for
// len(packet) octets. On error the returned payload is nil and, if dst
// overlapped packet, both may have been overwritten.
func (i *Inbound) Open(dst, packet []byte) (payload []byte, nextHeader uint8, err error) {
	t := i.t
	if len(packet) < t.suite.minLen() {
		i.malformed.Add(1)
		return nil, 0, ErrShortPacket
	}
	if binary.BigEndian.Uint32(packet) != t.spi {
		i.badSPI.Add(1)
		return nil, 0, ErrBadSPI
	}
	bodyOff := headerLen + int(t.ivLen)
	encLen := len(packet) - bodyOff - icvLen
	if encLen%t.suite.align() != 0 {
		// A conforming sender always aligns (RFC 4303 §2.4); for CBC a
		// partial block cannot even be decrypted.
		i.malformed.Add(1)
		return nil, 0, ErrMalformed
	}

	i.mu.Lock()
	seq := i.win.infer(binary.BigEndian.Uint32(packet[4:]))
	err = i.win.check(seq)
	i.mu.Unlock()
	if err != nil {
		i.count(err)
		return nil, 0, err
	}

	ret, out := grow(dst, encLen)
	enc := packet[bodyOff : bodyOff+encLen]
	iv := packet[headerLen:bodyOff]
	// The ciphers accept only exact overlap of output and input (for GCM
	// the input includes the ICV). For any other overlap, decrypt in place
	// inside packet and move the result afterwards.
	target := out
	if inexactOverlap(out, packet[bodyOff:]) {
		target = enc
	}

	s := t.get()
	switch t.suite {
	case SuiteAESGCM16:
		t.gcmParams(s, iv, seq)
		if _, e := t.gcm().Open(target[:0], s.nonce[:], packet[bodyOff:], s.aad[:]); e != nil {
			err = ErrAuth
		}
	default:
		// Separate integrity algorithm: verify before decrypting
		// (RFC 4303 §3.4.4.1).
		sum := t.icv(s, packet[:bodyOff+encLen], seq)
		if !icvEqual(sum, packet[bodyOff+encLen:]) {
			err = ErrAuth
		} else if t.suite == SuiteNullSHA256 {
			if &target[0] != &enc[0] {
				copy(target, enc)
			}
		} else {
			s.cbc.SetIV(iv)
			s.cbc.CryptBlocks(target, enc)
		}
	}
	t.put(s)
	if err != nil {
		i.authFailed.Add(1)
		return nil, 0, err
	}
	if &target[0] != &out[0] {
		copy(out, target)
	}

	// RFC 4303 §2.4: the receiver checks the padding. Pad Length plus the
	// two trailer octets must fit, and the default contents are 1, 2, 3...
	padLen := int(out[encLen-2])
	nextHeader = out[encLen-1]
	n := encLen - trailerLen - padLen
	if n < 0 {
		i.malformed.Add(1)
		return nil, 0, ErrMalformed
	}
	for k, b := range out[n : encLen-trailerLen] {
		if b != byte(k+1) {
			i.malformed.Add(1)
			return nil, 0, ErrMalformed
		}
	}

	i.mu.Lock()
	err = i.win.update(seq)
	i.mu.Unlock()
	if err != nil {
		i.count(err) // lost a race with a copy of the same packet
		return nil, 0, err
	}
	i.ok.Add(1)
	return ret[:len(dst)+n], nextHeader, nil
}

func (i *Inbound) count(err error) {
	switch err {
	case ErrReplay:
		i.replayed.Add(1)
	case ErrTooOld:
		i.tooOld.Add(1)
	}
}
