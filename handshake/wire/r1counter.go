package wire

import "encoding/binary"

// R1Counter is the R1_COUNTER parameter (RFC 7401 §5.2.3): 4 reserved octets
// and the 64-bit generation counter of valid puzzles. An Initiator MUST echo
// it in I2 including the Reserved field verbatim, so copy a received one with
// Builder.AddParam rather than re-encoding it.
type R1Counter struct {
	Counter uint64
}

// r1CounterLen is the fixed Length of R1_COUNTER.
const r1CounterLen = 12

// ParseR1Counter parses R1_COUNTER contents (exactly 12 octets).
func ParseR1Counter(contents []byte) (R1Counter, error) {
	if len(contents) != r1CounterLen {
		return R1Counter{}, lengthError(ParamR1Counter, len(contents), "12")
	}
	return R1Counter{Counter: binary.BigEndian.Uint64(contents[4:])}, nil
}

func (R1Counter) ParamType() ParamType { return ParamR1Counter }
func (R1Counter) Len() int             { return r1CounterLen }
func (r R1Counter) Encode(b []byte)    { binary.BigEndian.PutUint64(b[4:], r.Counter) }
