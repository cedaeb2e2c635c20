package nat

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/pion/stun/v4"
)

// TestKeepaliveIsKeepalive: what Keepalive builds is exactly what
// IsKeepalive recognises, and a Binding Request or a keepalive with a
// wrong FINGERPRINT is not one.
func TestKeepaliveIsKeepalive(t *testing.T) {
	k := Keepalive(make([]byte, 0, 64))
	if !IsSTUN(k) || !IsKeepalive(k) {
		t.Fatalf("Keepalive %x not recognised", k)
	}
	bad := bytes.Clone(k)
	bad[27] ^= 1
	if IsKeepalive(bad) {
		t.Fatal("a keepalive with a wrong FINGERPRINT was recognised")
	}
	req, err := BindingRequest()
	if err != nil {
		t.Fatal(err)
	}
	if IsKeepalive(req.Raw) {
		t.Fatal("a Binding Request taken for a keepalive")
	}
}

// TestKeepaliveAllocs: a keepalive built into a buffer with room allocates
// nothing. (Skipped under -race by `make test`.)
func TestKeepaliveAllocs(t *testing.T) {
	k := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { k = Keepalive(k[:0]) }); n != 0 {
		t.Fatalf("Keepalive into a buffer with room: %v allocations", n)
	}
}

// TestBindingAnswer: a request is answered with its source as
// XOR-MAPPED-ADDRESS (and the relay's instance), which the client reads
// back; a request with an unknown comprehension-required attribute gets a
// 420; neither answer exceeds the request by more than MaxGrowth.
func TestBindingAnswer(t *testing.T) {
	from := netip.MustParseAddrPort("[2001:db8::7]:40000")
	req, err := BindingRequest()
	if err != nil {
		t.Fatal(err)
	}
	var bd Binding
	if k, err := bd.Read(req.Raw); k != KindRequest || err != nil {
		t.Fatalf("Read: %v %v", k, err)
	}
	ans, err := bd.Answer(from, []byte{1, 2, 3, 4, 5, 6, 7, 8})
	bd.Done()
	if err != nil || len(ans) > len(req.Raw)+MaxGrowth {
		t.Fatalf("answer %d octets for %d (%v)", len(ans), len(req.Raw), err)
	}
	var client Binding
	if k, err := client.Read(bytes.Clone(ans)); k != KindResponse || err != nil {
		t.Fatalf("client Read: %v %v", k, err)
	}
	got, inst, err := client.Response(netip.MustParseAddrPort("192.0.2.1:3478"))
	if err != nil || got != from || inst != 0x0102030405060708 {
		t.Fatalf("response: %v %#x %v", got, inst, err)
	}
	client.Done()

	unknown, err := stun.Build(stun.TransactionID, stun.BindingRequest, stun.RawAttribute{Type: 0x0033, Value: []byte{1}}, stun.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	if k, err := bd.Read(unknown.Raw); k != KindRequest || err != nil {
		t.Fatalf("Read: %v %v", k, err)
	}
	ans, err = bd.Answer(from, nil)
	bd.Done()
	if err != nil || len(ans) > len(unknown.Raw)+MaxGrowth {
		t.Fatalf("420 answer %d octets for %d (%v)", len(ans), len(unknown.Raw), err)
	}
	var m stun.Message
	if err := stun.Decode(ans, &m); err != nil || m.Type != stun.BindingError {
		t.Fatalf("420 answer: %v %v", m.Type, err)
	}
}

// FuzzBinding: Read takes any input without panicking; IsSTUN agrees with
// the framing rule; a request it accepts is answered with a message pion
// decodes, at most MaxGrowth octets longer than the request.
func FuzzBinding(f *testing.F) {
	req, _ := BindingRequest()
	f.Add(req.Raw)
	f.Add(Keepalive(nil))
	resp, _ := stun.Build(stun.TransactionID, stun.BindingSuccess,
		&stun.XORMappedAddress{IP: []byte{192, 0, 2, 1}, Port: 9}, stun.Fingerprint)
	f.Add(resp.Raw)
	f.Add([]byte{0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42})
	var bd Binding
	from := netip.MustParseAddrPort("192.0.2.7:1")
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := bd.Read(b)
		defer bd.Done()
		if IsSTUN(b) != (len(b) >= stunHeaderLen && b[0]&0xc0 == 0 && stun.IsMessage(b) &&
			int(b[2])<<8|int(b[3]) == len(b)-stunHeaderLen && (len(b)-stunHeaderLen)%4 == 0) {
			t.Fatalf("IsSTUN disagrees with the framing rule on %x", b)
		}
		if err != nil || k != KindRequest {
			return
		}
		ans, err := bd.Answer(from, nil)
		if err != nil {
			return
		}
		if len(ans) > len(b)+MaxGrowth {
			t.Fatalf("answer of %d octets to %d", len(ans), len(b))
		}
		var m stun.Message
		if err := stun.Decode(bytes.Clone(ans), &m); err != nil {
			t.Fatalf("answer does not decode: %v", err)
		}
	})
}
