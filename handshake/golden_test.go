package handshake

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"hipnet.dev/esp"
	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
	"hipnet.dev/internal/pcap"
)

// Golden tests on real packets from cutehip, an independent HIPv2
// implementation (../shared/interop). Our strict checks must accept
// everything RFC-conformant in them and reject exactly the four documented
// deviations: the puzzle hash order, swapped HIP_MAC keys,
// HIP_SIGNATURE_2 in R2, and a 32-octet ESP ICV.

const interopDir = "../../shared/interop"

type capture struct {
	hip []wire.Packet // every HIP packet, in order
	esp []espFrame
}

type espFrame struct {
	fromInitiator bool
	pkt           []byte
}

func readCapture(t *testing.T, name string) *capture {
	t.Helper()
	f, err := os.Open(filepath.Join(interopDir, name))
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("%s not found: the interop captures live in ../shared beside the repository", name)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcap.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	c := &capture{}
	var initiatorAddr string
	for {
		p, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		fr, err := pcap.Decode(p)
		if err != nil {
			continue
		}
		switch fr.Proto {
		case 139:
			pkt, err := wire.ParsePacket(fr.Payload)
			if err != nil {
				t.Fatalf("%s: HIP packet does not parse: %v", name, err)
			}
			if pkt.Type() == wire.I1 && initiatorAddr == "" {
				initiatorAddr = fr.Src.String()
			}
			c.hip = append(c.hip, pkt)
		case 50:
			c.esp = append(c.esp, espFrame{fromInitiator: fr.Src.String() == initiatorAddr, pkt: fr.Payload})
		}
	}
	return c
}

func (c *capture) first(t *testing.T, typ wire.PacketType) wire.Packet {
	t.Helper()
	for _, p := range c.hip {
		if p.Type() == typ {
			return p
		}
	}
	t.Fatalf("no %v in capture", typ)
	return nil
}

func param(t *testing.T, p wire.Packet, typ wire.ParamType) wire.Param {
	t.Helper()
	q, ok := p.Param(typ)
	if !ok {
		t.Fatalf("%v without %v", p.Type(), typ)
	}
	return q
}

// kijOf reads the recorded DH secret for a capture.
func kijOf(t *testing.T, name string, size int) []byte {
	t.Helper()
	f, err := os.Open(filepath.Join(interopDir, "corpus-secrets.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) == 2 && fields[0] == name {
			n, ok := new(big.Int).SetString(fields[1], 10)
			if !ok {
				t.Fatal("bad Kij")
			}
			return n.FillBytes(make([]byte, size))
		}
	}
	t.Fatalf("no Kij for %s", name)
	return nil
}

func TestGoldenCutehip(t *testing.T) {
	for _, name := range []string{"cutehip-bex-rsa-ecdsa.pcap", "cutehip-bex-ecdsa-init.pcap", "cutehip-bex-rsa.pcap"} {
		t.Run(name, func(t *testing.T) { goldenCutehip(t, name) })
	}
}

func goldenCutehip(t *testing.T, name string) {
	c := readCapture(t, name)
	counts := map[wire.PacketType]int{}
	for _, p := range c.hip {
		counts[p.Type()]++
		if p.Version() != 2 {
			t.Fatalf("version %d", p.Version())
		}
		_ = wire.Format(p) // the printer must handle every real packet
	}
	// I1, R1, I2, R2, two UPDATE SEQ/ACK pairs, CLOSE and CLOSE_ACK (the
	// CLOSE is also quoted once inside an ICMP error, not counted here).
	if counts[wire.I1] != 1 || counts[wire.R1] != 1 || counts[wire.I2] != 1 || counts[wire.R2] != 1 ||
		counts[wire.UPDATE] != 4 || counts[wire.CLOSE] < 1 || counts[wire.CLOSE_ACK] != 1 {
		t.Fatalf("packet counts %v", counts)
	}
	i1, r1, i2, r2 := c.first(t, wire.I1), c.first(t, wire.R1), c.first(t, wire.I2), c.first(t, wire.R2)
	hitI, hitR := i1.SenderHIT(), i1.ReceiverHIT()

	// Identities: each HI hashes to its HIT (ORCHIDv2), in R1 and I2.
	pubR, err := parseHostID(param(t, r1, wire.ParamHostID).Contents())
	if err != nil {
		t.Fatal(err)
	}
	pubI, err := parseHostID(param(t, i2, wire.ParamHostID).Contents())
	if err != nil {
		t.Fatal(err)
	}
	if wire.HIT(pubR.HIT()) != hitR || wire.HIT(pubI.HIT()) != hitI {
		t.Fatal("HI does not hash to HIT")
	}

	// Conformant: R1's HIP_SIGNATURE_2 and I2's HIP_SIGNATURE verify
	// with our strict code.
	if err := verifySignature(pubR, r1, wire.ParamHIPSignature2); err != nil {
		t.Fatalf("R1 HIP_SIGNATURE_2: %v", err)
	}
	if err := verifySignature(pubI, i2, wire.ParamHIPSignature); err != nil {
		t.Fatalf("I2 HIP_SIGNATURE: %v", err)
	}
	// So do the signatures of every UPDATE, CLOSE and CLOSE_ACK.
	for _, p := range c.hip {
		if p.Type() < wire.UPDATE {
			continue
		}
		pub := pubI
		if p.SenderHIT() == hitR {
			pub = pubR
		}
		if err := verifySignature(pub, p, wire.ParamHIPSignature); err != nil {
			t.Fatalf("%v HIP_SIGNATURE: %v", p.Type(), err)
		}
	}

	// Deviation 3: R2 carries HIP_SIGNATURE_2. Our strict R2 check wants
	// HIP_SIGNATURE and rejects it; the signature itself is sound over
	// the ordinary scope, so that is the only fault.
	mustErr(t, verifySignature(pubR, r2, wire.ParamHIPSignature), ErrBadSignature)
	s2 := param(t, r2, wire.ParamHIPSignature2)
	sig, _ := wire.ParseSignature2(s2.Contents())
	if err := pubR.Verify(scopeOf(r2, s2.Offset(), nil), sig.Sig, hostid.Algorithm(sig.Alg)); err != nil {
		t.Fatalf("R2's HIP_SIGNATURE_2 over the HIP_SIGNATURE scope: %v", err)
	}

	// Deviation 1: the puzzle. RHASH is the Responder's suite hash.
	rhash := hostid.Suite(hitR.OGA()).NewHash
	sol, err := wire.ParseSolution(param(t, i2, wire.ParamSolution).Contents())
	if err != nil {
		t.Fatal(err)
	}
	if verifyPuzzle(rhash, sol.I, hitI, hitR, sol.J, int(sol.K)) {
		t.Fatal("strict puzzle check accepted cutehip's I|HIT-R|HIT-I|J order")
	}
	if !verifyPuzzle(rhash, sol.I, hitR, hitI, sol.J, int(sol.K)) {
		t.Fatal("the solution is not even valid in cutehip's order")
	}

	if name == "cutehip-bex-rsa.pcap" {
		return // no recorded Kij
	}

	// KEYMAT from the recorded Kij (RFC 7401 §6.5).
	dh, _ := wire.ParseDiffieHellman(param(t, r1, wire.ParamDiffieHellman).Contents())
	kij := kijOf(t, name, lookupGroup(dh.Group).secretLen())
	km, err := newKeymat(rhash, kij, sol.I, sol.J, hitI, hitR)
	if err != nil {
		t.Fatal(err)
	}
	hc, _ := wire.ParseHIPCipher(param(t, i2, wire.ParamHIPCipher).Contents())
	encLen, _ := cipherKeyLen(hc.IDs.At(0))
	hk, err := km.drawHIPKeys(encLen, rhash().Size())
	if err != nil {
		t.Fatal(err)
	}
	iIsG := hitI.Compare(hitR) > 0
	initKey, respKey := hk.mac.lg(), hk.mac.gl()
	if iIsG {
		initKey, respKey = hk.mac.gl(), hk.mac.lg()
	}
	hostIDR1 := param(t, r1, wire.ParamHostID).TLV()

	// Deviation 2: HIP_MAC in I2 and HIP_MAC_2 in R2 use the other
	// host's key. Strict verification fails; the swapped key verifies,
	// which proves our KEYMAT matches theirs octet for octet.
	mustErr(t, verifyMAC(rhash, initKey, i2, wire.ParamHIPMAC, nil), ErrBadMAC)
	if err := verifyMAC(rhash, respKey, i2, wire.ParamHIPMAC, nil); err != nil {
		t.Fatalf("I2 HIP_MAC with the swapped key: %v", err)
	}
	mustErr(t, verifyMAC(rhash, respKey, r2, wire.ParamHIPMAC2, hostIDR1), ErrBadMAC)
	if err := verifyMAC(rhash, initKey, r2, wire.ParamHIPMAC2, hostIDR1); err != nil {
		t.Fatalf("R2 HIP_MAC_2 with the swapped key: %v", err)
	}

	// ESP keys (RFC 7402 §7) from the KEYMAT index in I2's ESP_INFO.
	ei, _ := wire.ParseESPInfo(param(t, i2, wire.ParamESPInfo).Contents())
	et, _ := wire.ParseESPTransform(param(t, i2, wire.ParamESPTransform).Contents())
	suite := esp.Suite(et.Suites.At(0))
	ekLen, akLen := suite.KeyLen()
	ek, err := km.espKeysAt(int(ei.KeymatIndex), ekLen, akLen)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.esp) < 2 {
		t.Fatal("no ESP in capture")
	}
	for _, f := range c.esp[:4] {
		senderG := iIsG == f.fromInitiator
		encKey, authKey := ek.encLG, ek.authLG
		if senderG {
			encKey, authKey = ek.encGL, ek.authGL
		}
		spi := binary.BigEndian.Uint32(f.pkt)
		// Deviation 4: the strict SA (16-octet ICV, RFC 4868) rejects it.
		in, err := esp.NewInbound(esp.Config{SPI: spi, Suite: suite, EncKey: encKey, AuthKey: authKey})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := in.Open(nil, f.pkt); !errors.Is(err, esp.ErrAuth) {
			t.Fatalf("strict ESP accepted a 32-octet ICV: %v", err)
		}
		// The full HMAC-SHA-256 (no truncation, no ESN) verifies with our
		// keys, and the payload decrypts to well-formed ESP padding.
		body, icv := f.pkt[:len(f.pkt)-32], f.pkt[len(f.pkt)-32:]
		m := hmac.New(sha256.New, authKey)
		m.Write(body)
		if !hmac.Equal(m.Sum(nil), icv) {
			t.Fatal("ESP ICV does not verify with the derived key: ESP keys differ")
		}
		block, _ := aes.NewCipher(encKey)
		pt := make([]byte, len(body)-24)
		cipher.NewCBCDecrypter(block, body[8:24]).CryptBlocks(pt, body[24:])
		padLen, next := int(pt[len(pt)-2]), pt[len(pt)-1]
		for i := 1; i <= padLen; i++ {
			if pt[len(pt)-2-padLen+i-1] != byte(i) {
				t.Fatal("ESP padding wrong: decryption key differs")
			}
		}
		if next != 58 {
			t.Fatalf("inner next header %d, want 58 (ICMPv6)", next)
		}
	}
}

// TestGoldenOpenHIP: OpenHIP speaks version 1; its packets are rejected
// cleanly as such, before any state is touched.
func TestGoldenOpenHIP(t *testing.T) {
	f, err := os.Open(filepath.Join(interopDir, "openhip-bex-udp.pcap"))
	if errors.Is(err, os.ErrNotExist) {
		t.Skip("interop captures not found")
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcap.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	_, b := pair(t)
	n := 0
	for {
		p, err := r.Next()
		if err == io.EOF {
			break
		}
		fr, err := pcap.Decode(p)
		if err != nil || fr.Proto != 17 || len(fr.Payload) < 4 || !bytes.Equal(fr.Payload[:4], []byte{0, 0, 0, 0}) {
			continue
		}
		n++
		_, err = b.e.Handle(t0, fr.Payload[4:], nil)
		if !errors.Is(err, ErrMalformed) || !errors.Is(err, wire.ErrVersion) {
			t.Fatalf("OpenHIP packet: %v", err)
		}
	}
	if n != 4 {
		t.Fatalf("%d HIP packets, want 4", n)
	}
}
