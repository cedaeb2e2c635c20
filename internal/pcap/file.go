package pcap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// Link types (LINKTYPE_* values of the tcpdump link-layer header registry).
const (
	LinkTypeEthernet uint32 = 1
	LinkTypeRaw      uint32 = 101
	LinkTypeLinuxSLL uint32 = 113
)

// Classic pcap magic numbers as they read in the file's own byte order.
const (
	magicMicro uint32 = 0xa1b2c3d4
	magicNano  uint32 = 0xa1b23c4d
)

const (
	globalHeaderLen = 24
	recordHeaderLen = 16
	// maxSnapLen bounds a record's captured length so a corrupt file
	// cannot make Next allocate gigabytes.
	maxSnapLen = 256 << 10
)

// ErrFormat reports a file that is not a classic pcap file or a record
// that is damaged.
var ErrFormat = errors.New("pcap: bad file format")

// Packet is one captured record.
type Packet struct {
	Time     time.Time
	Data     []byte // captured bytes (may be shorter than on the wire)
	LinkType uint32
}

// Reader reads packets from a classic pcap file.
type Reader struct {
	r        io.Reader
	order    binary.ByteOrder
	nano     bool
	linkType uint32
	snapLen  uint32
	hdr      [recordHeaderLen]byte
}

// NewReader reads the global header from r and returns a Reader for the
// records that follow. Both byte orders and both the microsecond and the
// nanosecond magic numbers are accepted.
func NewReader(r io.Reader) (*Reader, error) {
	var h [globalHeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, fmt.Errorf("pcap: reading global header: %w", err)
	}
	rd := &Reader{r: r}
	switch {
	case binary.LittleEndian.Uint32(h[0:]) == magicMicro:
		rd.order = binary.LittleEndian
	case binary.LittleEndian.Uint32(h[0:]) == magicNano:
		rd.order, rd.nano = binary.LittleEndian, true
	case binary.BigEndian.Uint32(h[0:]) == magicMicro:
		rd.order = binary.BigEndian
	case binary.BigEndian.Uint32(h[0:]) == magicNano:
		rd.order, rd.nano = binary.BigEndian, true
	default:
		return nil, fmt.Errorf("%w: magic %#x", ErrFormat, h[0:4])
	}
	rd.snapLen = rd.order.Uint32(h[16:])
	// The upper bits of the link-type field carry FCS information
	// (pcap-savefile(5)); the link type proper is the low 28 bits.
	rd.linkType = rd.order.Uint32(h[20:]) & 0x0fffffff
	return rd, nil
}

// LinkType returns the file's link-layer header type.
func (r *Reader) LinkType() uint32 { return r.linkType }

// Next returns the next packet, or io.EOF after the last one. A file that
// ends inside a record returns io.ErrUnexpectedEOF.
func (r *Reader) Next() (Packet, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			return Packet{}, fmt.Errorf("pcap: truncated record header: %w", err)
		}
		return Packet{}, err // io.EOF at a record boundary
	}
	sec := r.order.Uint32(r.hdr[0:])
	frac := r.order.Uint32(r.hdr[4:])
	capLen := r.order.Uint32(r.hdr[8:])
	if capLen > maxSnapLen {
		return Packet{}, fmt.Errorf("%w: record length %d", ErrFormat, capLen)
	}
	data := make([]byte, capLen)
	if _, err := io.ReadFull(r.r, data); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Packet{}, fmt.Errorf("pcap: truncated record: %w", err)
	}
	nsec := int64(frac)
	if !r.nano {
		nsec *= 1000
	}
	return Packet{Time: time.Unix(int64(sec), nsec).UTC(), Data: data, LinkType: r.linkType}, nil
}

// Writer writes a classic pcap file (little-endian, microsecond
// timestamps, the format every tool reads).
type Writer struct {
	w        io.Writer
	linkType uint32
	buf      []byte
}

// NewWriter writes the global header for linkType to w.
func NewWriter(w io.Writer, linkType uint32) (*Writer, error) {
	var h [globalHeaderLen]byte
	binary.LittleEndian.PutUint32(h[0:], magicMicro)
	binary.LittleEndian.PutUint16(h[4:], 2) // version 2.4
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], maxSnapLen)
	binary.LittleEndian.PutUint32(h[20:], linkType)
	if _, err := w.Write(h[:]); err != nil {
		return nil, err
	}
	return &Writer{w: w, linkType: linkType}, nil
}

// WritePacket writes one record holding data, captured whole at t.
func (w *Writer) WritePacket(t time.Time, data []byte) error {
	if len(data) > maxSnapLen {
		return fmt.Errorf("pcap: packet of %d bytes exceeds snap length", len(data))
	}
	var h [recordHeaderLen]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(t.Unix()))
	binary.LittleEndian.PutUint32(h[4:], uint32(t.Nanosecond()/1000))
	binary.LittleEndian.PutUint32(h[8:], uint32(len(data)))
	binary.LittleEndian.PutUint32(h[12:], uint32(len(data)))
	if _, err := w.w.Write(h[:]); err != nil {
		return err
	}
	_, err := w.w.Write(data)
	return err
}
