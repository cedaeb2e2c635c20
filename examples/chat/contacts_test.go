package main

import (
	"strings"
	"testing"

	"hipnet.dev/hipnet"
)

func TestParseContacts(t *testing.T) {
	const a, b = "2001:20::a", "2001:20::b"
	c, err := parseContacts(strings.NewReader("# friends\n\nalice "+a+"\n  bob.smith\t"+b+"   # work\n"), "contacts")
	if err != nil {
		t.Fatal(err)
	}
	ha, _ := hipnet.ParseHIT(a)
	hb, _ := hipnet.ParseHIT(b)
	if h, ok := c.hit("bob.smith"); !ok || h != hb {
		t.Fatalf("bob.smith: %v %v", h, ok)
	}
	if c.name(ha) != "alice" || c.name(hb) != "bob.smith" {
		t.Fatalf("names %q %q", c.name(ha), c.name(hb))
	}
	other, _ := hipnet.ParseHIT("2001:20::c")
	if c.name(other) != "2001:20::c" {
		t.Fatalf("unknown HIT named %q", c.name(other))
	}
	if hs := c.hits(); len(hs) != 2 || hs[0] != ha || hs[1] != hb {
		t.Fatalf("hits %v", hs)
	}
	if (&contacts{}).name(ha) != a {
		t.Fatal("empty book")
	}

	for in, want := range map[string]string{
		"alice\n":                       "contacts:1: want \"petname HIT\", got 1 fields",
		"alice " + a + " extra\n":       "got 3 fields",
		"# x\nal:ice " + a + "\n":       "contacts:2: petname \"al:ice\"",
		"alice 2001:db8::1\n":           "ORCHIDv2",
		"alice " + a + "\nalice " + b:   "contacts:2: petname \"alice\" appears twice",
		"alice " + a + "\nbob " + a:     "is already \"alice\"",
		"alice 2001:20::a:zz\n":         "contacts:1:",
		"ok " + a + "\n\nbad@name " + b: "contacts:3:",
	} {
		if _, err := parseContacts(strings.NewReader(in), "contacts"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}
