package resolve

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"

	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
	"hipnet.dev/internal/testkey"
)

var (
	keysOnce sync.Once
	keyP384  *hostid.PrivateKey
	keyRSA   *hostid.PrivateKey
	keysErr  error
)

// moreKeys returns a P-384 and an RSA-2048 identity, generated once.
func moreKeys(t *testing.T) (p384, rsa *hostid.PrivateKey) {
	t.Helper()
	keysOnce.Do(func() {
		keyP384, keysErr = hostid.Generate(hostid.ECDSAP384, nil)
		if keysErr == nil {
			keyRSA, keysErr = hostid.Generate(hostid.RSA2048, nil)
		}
	})
	if keysErr != nil {
		t.Fatal(keysErr)
	}
	return keyP384, keyRSA
}

func pkOf(t *testing.T, rr *dns.HIP) []byte {
	t.Helper()
	pk, err := base64.StdEncoding.DecodeString(rr.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return pk
}

// TestNewHIPRREncoding checks the RDATA against RFC 8005 §5 by hand: PK
// algorithm 3 with x | y for ECDSA (RFC 6605 §4), 2 with the RFC 3110 key
// (the RSA HI) for RSA, the HIT in hex.
func TestNewHIPRREncoding(t *testing.T) {
	p384, rsaKey := moreKeys(t)
	for _, c := range []struct {
		name  string
		key   *hostid.PrivateKey
		alg   uint8
		pkLen int
	}{
		{"P-256", testkey.Key(t, 0), 3, 64},
		{"P-384", p384, 3, 96},
		{"RSA-2048", rsaKey, 2, 0},
	} {
		pub := c.key.Public()
		rr, err := NewHIPRR("Host.Example.com", 3600, pub, "rvs1.example.com", "rvs2.example.com.")
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		hit := pub.HIT()
		if rr.Hdr.Name != "Host.Example.com." || rr.Hdr.Rrtype != dns.TypeHIP || rr.Hdr.Class != dns.ClassINET || rr.Hdr.Ttl != 3600 ||
			rr.PublicKeyAlgorithm != c.alg || rr.HitLength != 16 || !strings.EqualFold(rr.Hit, hex.EncodeToString(hit[:])) ||
			strings.Join(rr.RendezvousServers, " ") != "rvs1.example.com. rvs2.example.com." {
			t.Errorf("%s: %v", c.name, rr)
		}
		pk := pkOf(t, rr)
		if int(rr.PublicKeyLength) != len(pk) {
			t.Errorf("%s: PK length %d for %d octets", c.name, rr.PublicKeyLength, len(pk))
		}
		switch c.alg {
		case 3:
			ek := pub.CryptoPublicKey().(*ecdsa.PublicKey)
			point, _ := ek.Bytes() // 0x04 | x | y
			if len(pk) != c.pkLen || !bytes.Equal(pk, point[1:]) {
				t.Errorf("%s: public key field %x, want x|y %x", c.name, pk, point[1:])
			}
		case 2:
			if !bytes.Equal(pk, pub.HI()) {
				t.Errorf("%s: public key field is not the RFC 3110 HI", c.name)
			}
		}
		// And back, through the wire format and the presentation format.
		for _, back := range []*dns.HIP{viaWire(t, rr), viaText(t, rr)} {
			got, gotPub, err := verifyHIP(back)
			if err != nil || got != wire.HIT(hit) || !gotPub.Equal(pub) {
				t.Errorf("%s: verifyHIP = %v, %v, %v; want %v", c.name, got, gotPub, err, wire.HIT(hit))
			}
		}
	}
	if _, err := NewHIPRR("bad name", 0, testkey.Key(t, 0).Public()); !errors.Is(err, ErrBadName) {
		t.Errorf("bad name: %v", err)
	}
	if _, err := NewHIPRR("a.example", 0, nil); err == nil {
		t.Error("nil key accepted")
	}
}

func viaWire(t *testing.T, rr *dns.HIP) *dns.HIP {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(rr.Hdr.Name, dns.TypeHIP)
	m.Answer = []dns.RR{rr}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	var back dns.Msg
	if err := back.Unpack(b); err != nil {
		t.Fatal(err)
	}
	return back.Answer[0].(*dns.HIP)
}

func viaText(t *testing.T, rr *dns.HIP) *dns.HIP {
	t.Helper()
	back, err := dns.NewRR(rr.String())
	if err != nil {
		t.Fatalf("%s: %v", rr, err)
	}
	return back.(*dns.HIP)
}

// TestVerifyHIPPointForms: the HIT decides which HOST_ID form an RFC 6605
// key stands for, and a key field in HOST_ID form is accepted.
func TestVerifyHIPPointForms(t *testing.T) {
	pub := testkey.Key(t, 0).Public()
	hi := pub.HI() // ECC Curve | 0x04 | x | y
	xy := append(bytes.Clone(hi[:2]), hi[3:]...)
	pubXY, err := hostid.ParseHostIdentity(hostid.AlgECDSA, xy)
	if err != nil {
		t.Fatal(err)
	}
	if pubXY.HIT() == pub.HIT() {
		t.Fatal("the two point forms have one HIT")
	}
	// A peer whose HOST_ID carries x|y: same RR key field, other HIT.
	rr, err := NewHIPRR("xy.example", 60, pubXY)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkOf(t, rr)) != 64 {
		t.Fatalf("x|y key published as %d octets", len(pkOf(t, rr)))
	}
	if _, got, err := verifyHIP(rr); err != nil || !got.Equal(pubXY) {
		t.Errorf("x|y HOST_ID: %v, %v; want the x|y HI", got, err)
	}
	// A publisher that copied its HOST_ID HI into DNS (67 and 66 octets).
	for _, h := range [][]byte{hi, xy} {
		rr, _ := NewHIPRR("copy.example", 60, pub)
		p, _ := hostid.ParseHostIdentity(hostid.AlgECDSA, h)
		hit := p.HIT()
		rr.Hit, rr.PublicKey, rr.PublicKeyLength = hex.EncodeToString(hit[:]), base64.StdEncoding.EncodeToString(h), uint16(len(h))
		if _, got, err := verifyHIP(rr); err != nil || !got.Equal(p) {
			t.Errorf("HOST_ID form of %d octets: %v, %v", len(h), got, err)
		}
	}
}

// rfc8005Example is the record of RFC 8005 §7, an RSA key with a HIPv1
// HIT (ORCHIDv1, 2001:10::/28, RFC 4843).
const rfc8005Example = `www.example.com. IN HIP ( 2 200100107B1A74DF365639CC39F1D578
	AwEAAbdxyhNuSutc5EMzxTs9LBPCIkOFH8cIvM4p9+LrV4e19WzK00+CI6zBCQTdtWsuxKbWIy87UOoJTwkUs7lBu+Upr1gsNrut79ryra+bSRGQb1slImA8YVJyuIDsj7kwzG7jnERNqnWxZ48AWkskmdHaVDP4BcelrTI3rMXdXF5D
	rvs.example.com. )`

func TestVerifyHIPRefuses(t *testing.T) {
	pubA, pubB := testkey.Key(t, 0).Public(), testkey.Key(t, 1).Public()
	mk := func(mod func(rr *dns.HIP)) *dns.HIP {
		rr, err := NewHIPRR("a.example", 60, pubA)
		if err != nil {
			t.Fatal(err)
		}
		mod(rr)
		return rr
	}
	hitB := pubB.HIT()
	for _, c := range []struct {
		name string
		rr   *dns.HIP
		is   error
	}{
		{"HI of A, HIT of B", mk(func(rr *dns.HIP) { rr.Hit = hex.EncodeToString(hitB[:]) }), ErrHITMismatch},
		{"DSA", mk(func(rr *dns.HIP) { rr.PublicKeyAlgorithm = 1 }), hostid.ErrUnsupportedAlgorithm},
		{"algorithm 4", mk(func(rr *dns.HIP) { rr.PublicKeyAlgorithm = 4 }), hostid.ErrUnsupportedAlgorithm},
		{"ECDSA key as RSA", mk(func(rr *dns.HIP) { rr.PublicKeyAlgorithm = 2 }), ErrBadRecord},
		{"short HIT", mk(func(rr *dns.HIP) { rr.Hit = rr.Hit[:30]; rr.HitLength = 15 }), ErrBadRecord},
		{"HIT not hex", mk(func(rr *dns.HIP) { rr.Hit = strings.Repeat("zz", 16) }), ErrBadRecord},
		{"key not base64", mk(func(rr *dns.HIP) { rr.PublicKey = "!!!!" }), ErrBadRecord},
		{"empty key", mk(func(rr *dns.HIP) { rr.PublicKey = "" }), ErrBadRecord},
		{"63-octet ECDSA key", mk(func(rr *dns.HIP) {
			rr.PublicKey = base64.StdEncoding.EncodeToString(make([]byte, 63))
		}), ErrBadRecord},
		{"point not on the curve", mk(func(rr *dns.HIP) {
			rr.PublicKey = base64.StdEncoding.EncodeToString(make([]byte, 64))
		}), hostid.ErrInvalidKey},
		{"HOST_ID form with the wrong curve", mk(func(rr *dns.HIP) {
			hi := pubA.HI()
			hi[1] = 2
			rr.PublicKey = base64.StdEncoding.EncodeToString(hi)
		}), ErrBadRecord},
	} {
		_, pub, err := verifyHIP(c.rr)
		if !errors.Is(err, c.is) || pub != nil {
			t.Errorf("%s: %v, %v; want %v", c.name, pub, err, c.is)
		}
	}

	// The RFC's own example: a valid RSA key, but its HIT is a HIPv1
	// ORCHID, not the ORCHIDv2 of its HI, so HIPv2 refuses it.
	rr, err := dns.NewRR(rfc8005Example)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = verifyHIP(rr.(*dns.HIP))
	if !errors.Is(err, ErrHITMismatch) || !strings.Contains(err.Error(), "2001:10:7b1a:74df:3656:39cc:39f1:d578") {
		t.Errorf("RFC 8005 §7 example: %v; want ErrHITMismatch", err)
	}
}
