package wire

import "testing"

// TestBuilderPacket: Packet reads back what was built, and reports a
// builder that was never started.
func TestBuilderPacket(t *testing.T) {
	var b Builder
	if _, err := b.Packet(); err == nil {
		t.Fatal("Packet of a builder never started")
	}
	b.Reset(nil, UPDATE, HIT{1}, HIT{2})
	b.Add(ESPInfo{NewSPI: 7})
	p, err := b.Packet()
	if err != nil {
		t.Fatal(err)
	}
	q, ok := p.Param(ParamESPInfo)
	if !ok || p.Type() != UPDATE || p.SenderHIT() != (HIT{1}) {
		t.Fatalf("read back %v from %v, ESP_INFO %v", p.Type(), p.SenderHIT(), ok)
	}
	if ei, err := ParseESPInfo(q.Contents()); err != nil || ei.NewSPI != 7 {
		t.Fatalf("ESP_INFO %+v, %v", ei, err)
	}
}
