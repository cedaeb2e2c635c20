package nat

import (
	"bytes"
	"testing"

	"github.com/pion/stun/v4"
)

func TestKeepalive(t *testing.T) {
	prefix := []byte("prefix")
	b := Keepalive(append([]byte(nil), prefix...))
	if !bytes.HasPrefix(b, prefix) {
		t.Fatal("prefix lost")
	}
	ka := b[len(prefix):]
	if len(ka) != keepaliveLen || !stun.IsMessage(ka) {
		t.Fatalf("%d octets, IsMessage %v", len(ka), stun.IsMessage(ka))
	}
	var m stun.Message
	if err := stun.Decode(ka, &m); err != nil {
		t.Fatal(err)
	}
	if m.Type != stun.NewType(stun.MethodBinding, stun.ClassIndication) {
		t.Errorf("type %v, want Binding indication", m.Type)
	}
	if len(m.Attributes) != 1 || m.Attributes[0].Type != stun.AttrFingerprint {
		t.Errorf("attributes %v, want FINGERPRINT only", m.Attributes)
	}
	if err := stun.Fingerprint.Check(&m); err != nil {
		t.Errorf("FINGERPRINT: %v", err)
	}
	if bytes.Equal(Keepalive(nil)[8:20], Keepalive(nil)[8:20]) {
		t.Error("two keepalives with one transaction ID")
	}
	if NewMux().Deliver(ka, peerAddr) {
		t.Error("the Mux took a keepalive")
	}
}
