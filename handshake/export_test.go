package handshake

import (
	"bytes"
	"errors"
	"testing"
)

// TestExport: both hosts of an association export the same secret for a
// label, other labels and other associations give other secrets, the
// secret is none of the KEYMAT octets that key HIP or ESP, and after
// CLOSE there is nothing to export.
func TestExport(t *testing.T) {
	a, b := established(t)
	sa, err := a.a(b).Export("streams psk", 32)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := b.a(a).Export("streams psk", 32)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sa, sb) || len(sa) != 32 {
		t.Fatalf("the two hosts exported different secrets:\n%x\n%x", sa, sb)
	}
	other, _ := a.a(b).Export("another label", 32)
	if bytes.Equal(other, sa) {
		t.Fatal("two labels gave the same secret")
	}
	km := a.a(b).km
	drawn, err := km.at(0, km.next)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(drawn, sa[:16]) {
		t.Fatal("the exported secret is a run of KEYMAT")
	}

	c, d := established(t)
	sc, _ := c.a(d).Export("streams psk", 32)
	if bytes.Equal(sc, sa) {
		t.Fatal("two associations exported the same secret")
	}

	a.a(b).shed()
	if _, err := a.a(b).Export("streams psk", 32); !errors.Is(err, ErrNoKeys) {
		t.Fatalf("Export after shed: %v, want ErrNoKeys", err)
	}
}
