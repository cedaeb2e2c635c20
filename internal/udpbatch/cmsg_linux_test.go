package udpbatch

import (
	"bytes"
	"encoding/binary"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// cmsg builds one control message as the kernel lays it out: header, data,
// padding to CMSG_SPACE.
func cmsg(level, typ int32, data []byte) []byte {
	b := make([]byte, unix.CmsgSpace(len(data)))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = level, typ
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[unix.CmsgLen(0):], data)
	return b
}

func groInt(size int32) []byte {
	return cmsg(unix.SOL_UDP, unix.UDP_GRO, binary.NativeEndian.AppendUint32(nil, uint32(size)))
}

func TestParseGRO(t *testing.T) {
	pktinfo := cmsg(unix.IPPROTO_IP, unix.IP_PKTINFO, make([]byte, 12))
	u16 := cmsg(unix.SOL_UDP, unix.UDP_GRO, binary.NativeEndian.AppendUint16(nil, 1400))
	bad := groInt(1200)
	binary.NativeEndian.PutUint32(bad, 1000) // longer than the buffer (the low half of cmsg_len)
	for _, tc := range []struct {
		name    string
		control []byte
		size    int
		found   bool
	}{
		{"none", nil, 0, false},
		{"int", groInt(1200), 1200, true},
		{"uint16", u16, 1400, true},
		{"after pktinfo", append(bytes.Clone(pktinfo), groInt(1200)...), 1200, true},
		{"pktinfo only", pktinfo, 0, false},
		{"negative", groInt(-5), 0, true},
		{"short data", cmsg(unix.SOL_UDP, unix.UDP_GRO, []byte{7}), 0, true},
		{"length past the end", bad, 0, false},
		{"truncated header", groInt(1200)[:unix.SizeofCmsghdr-1], 0, false},
		{"unpadded last", groInt(1200)[:unix.CmsgLen(4)], 1200, true},
	} {
		size, found := parseGRO(tc.control)
		if size != tc.size || found != tc.found {
			t.Errorf("%s: %d, %v; want %d, %v", tc.name, size, found, tc.size, tc.found)
		}
	}
}

// FuzzParseGRO feeds parseGRO arbitrary control data (seeds in
// testdata/fuzz/FuzzParseGRO): it must not panic, return a negative
// size, or change its answer when more octets follow.
func FuzzParseGRO(f *testing.F) {
	f.Add(groInt(1200))
	f.Add(append(cmsg(unix.IPPROTO_IP, unix.IP_PKTINFO, make([]byte, 12)), groInt(1400)...))
	f.Fuzz(func(t *testing.T, control []byte) {
		size, found := parseGRO(control)
		if size < 0 || (!found && size != 0) {
			t.Fatalf("size %d, found %v", size, found)
		}
		more := append(bytes.Clone(control), groInt(999)...)
		size2, found2 := parseGRO(more)
		if found && (!found2 || size2 != size) {
			t.Fatalf("with more octets: %d, %v; without: %d, %v", size2, found2, size, found)
		}
	})
}
