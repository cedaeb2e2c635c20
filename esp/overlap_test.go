package esp_test

import (
	"bytes"
	"testing"

	"hipnet.dev/esp"
)

// Open and Seal must work, and never panic, for every placement of the
// output relative to the input inside one buffer: before, over the header,
// exactly over the ciphertext, inside it, over the ICV, after.
func TestOverlapEveryOffset(t *testing.T) {
	for _, s := range allSuites {
		payload := seqBytes(3, 61)
		ref, _ := esp.NewOutbound(testConfig(s, 0x99))
		want := mustSeal(t, ref, payload, 17) // seq 1

		const at = 256
		big := make([]byte, 1024)
		for start := 0; start <= at+len(want)+8; start++ {
			in, _ := esp.NewInbound(testConfig(s, 0x99))
			clear(big)
			copy(big[at:], want)
			got, nh, err := in.Open(big[start:start], big[at:at+len(want)])
			if err != nil || nh != 17 || !bytes.Equal(got, payload) {
				t.Fatalf("%v: Open with dst at %d (packet at %d): %v", s, start, at, err)
			}
		}
		for start := 0; start <= at+len(want)+8; start++ {
			o, _ := esp.NewOutbound(testConfig(s, 0x99))
			clear(big)
			copy(big[at:], payload)
			pkt, err := o.Seal(big[start:start], big[at:at+len(payload)], 17)
			if err != nil || !bytes.Equal(pkt, want) {
				t.Fatalf("%v: Seal with dst at %d (payload at %d): %v\n got %x\nwant %x", s, start, at, err, pkt, want)
			}
		}
	}
}
