package wire

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Format renders a parsed packet for humans, one line for the header, one
// for each HIT and one per parameter with its decoded fields. It is what
// `make demo` and test failures print. It never panics on a packet that
// ParsePacket accepted; a parameter whose contents do not parse is shown as
// malformed with a hex prefix.
func Format(p Packet) string {
	var sb strings.Builder
	if len(p) < HeaderLen {
		fmt.Fprintf(&sb, "HIP (truncated, %d octets) %s", len(p), hexPrefix(p))
		return sb.String()
	}
	fmt.Fprintf(&sb, "HIP %v v%d len=%d checksum=0x%04x controls=0x%04x",
		p.Type(), p.Version(), len(p), p.Checksum(), p.Controls())
	if p.Anonymous() {
		sb.WriteString(" (anonymous)")
	}
	if nh := p.NextHeader(); nh != NextHeaderNone {
		fmt.Fprintf(&sb, " next-header=%d", nh)
	}
	fmt.Fprintf(&sb, "\n  sender   %v\n  receiver %v", p.SenderHIT(), p.ReceiverHIT())
	it := p.Params()
	for {
		q, ok := it.Next()
		if !ok {
			break
		}
		sb.WriteString("\n  ")
		formatParam(&sb, q)
	}
	if err := it.Err(); err != nil {
		fmt.Fprintf(&sb, "\n  !! %v", err)
	}
	return sb.String()
}

// FormatParam renders one parameter on one line.
func FormatParam(q Param) string {
	var sb strings.Builder
	formatParam(&sb, q)
	return sb.String()
}

func formatParam(sb *strings.Builder, q Param) {
	t, c := q.Type(), q.Contents()
	crit := ""
	if t.Critical() {
		crit = ",C"
	}
	fmt.Fprintf(sb, "@%-4d %v (%d%s) len=%d", q.Offset(), t, uint16(t), crit, len(c))
	s, err := describe(t, c)
	switch {
	case err != nil:
		fmt.Fprintf(sb, " MALFORMED (%v): %s", err, hexPrefix(c))
	case s != "":
		sb.WriteString(": ")
		sb.WriteString(s)
	}
}

// describe decodes the contents of a known parameter type.
func describe(t ParamType, c []byte) (string, error) {
	switch t {
	case ParamESPInfo:
		v, err := ParseESPInfo(c)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("keymat-index=%d old-spi=0x%08x new-spi=0x%08x", v.KeymatIndex, v.OldSPI, v.NewSPI), nil
	case ParamR1Counter:
		v, err := ParseR1Counter(c)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("counter=%d", v.Counter), nil
	case ParamPuzzle:
		v, err := ParsePuzzle(c)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("K=%d lifetime=%d (%v) opaque=%x I=%s", v.K, v.Lifetime, v.LifetimeDuration(), v.Opaque, hexPrefix(v.I)), nil
	case ParamSolution:
		v, err := ParseSolution(c)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("K=%d opaque=%x I=%s J=%s", v.K, v.Opaque, hexPrefix(v.I), hexPrefix(v.J)), nil
	case ParamSeq:
		v, err := ParseSeq(c)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("update-id=%d", v.UpdateID), nil
	case ParamAck:
		v, err := ParseAck(c)
		if err != nil {
			return "", err
		}
		ids := make([]string, v.IDs.Len())
		for i := range ids {
			ids[i] = fmt.Sprint(v.IDs.At(i))
		}
		return "update-ids=[" + strings.Join(ids, " ") + "]", nil
	case ParamDHGroupList:
		v, err := ParseDHGroupList(c)
		if err != nil {
			return "", err
		}
		gs := make([]string, v.Len())
		for i := range gs {
			gs[i] = DHGroupName(v.At(i))
		}
		return "groups=[" + strings.Join(gs, " ") + "]", nil
	case ParamDiffieHellman:
		v, err := ParseDiffieHellman(c)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("group=%s public=%s", DHGroupName(v.Group), hexPrefix(v.Public)), nil
	case ParamHIPCipher:
		v, err := ParseHIPCipher(c)
		if err != nil {
			return "", err
		}
		return "ciphers=" + u16Names(v.IDs, CipherName), nil
	case ParamEncrypted:
		if len(c) < 4 {
			return "", lengthError(t, len(c), "at least 4")
		}
		return fmt.Sprintf("iv+data=%s", hexPrefix(c[4:])), nil
	case ParamHostID:
		v, err := ParseHostID(c)
		if err != nil {
			return "", err
		}
		s := fmt.Sprintf("alg=%s hi=%s", AlgName(v.Algorithm), hexPrefix(v.HI))
		if curve, pub, ok := v.ECC(); ok {
			s += fmt.Sprintf(" curve=%d key=%d octets", curve, len(pub))
		}
		if v.DIType != DITypeNone || len(v.DI) > 0 {
			s += fmt.Sprintf(" di-type=%d di=%q", v.DIType, v.DI)
		}
		return s, nil
	case ParamHITSuiteList:
		v, err := ParseHITSuiteList(c)
		if err != nil {
			return "", err
		}
		ss := make([]string, v.Len())
		for i := range ss {
			ss[i] = HITSuiteName(v.Suite(i))
			if v.IDs[i]&0x0f != 0 {
				ss[i] += fmt.Sprintf("(raw 0x%02x)", v.IDs[i])
			}
		}
		return "suites=[" + strings.Join(ss, " ") + "]", nil
	case ParamTransportFormatList:
		v, err := ParseTransportFormatList(c)
		if err != nil {
			return "", err
		}
		return "formats=" + u16Names(v.IDs, func(id uint16) string {
			if id == TransportFormatESP {
				return "ESP"
			}
			return fmt.Sprint(id)
		}), nil
	case ParamESPTransform:
		v, err := ParseESPTransform(c)
		if err != nil {
			return "", err
		}
		return "suites=" + u16Names(v.Suites, ESPSuiteName), nil
	case ParamNotification:
		v, err := ParseNotification(c)
		if err != nil {
			return "", err
		}
		s := fmt.Sprintf("type=%v (%d)", v.Type, uint16(v.Type))
		if v.Type == NotifyUnsupportedCriticalParameterType && len(v.Data) == 2 {
			s += fmt.Sprintf(" param=%v", ParamType(binary.BigEndian.Uint16(v.Data)))
		} else if len(v.Data) > 0 {
			s += " data=" + hexPrefix(v.Data)
		}
		return s, nil
	case ParamLocatorSet:
		v, err := ParseLocatorSet(c)
		if err != nil {
			return "", err
		}
		ls := make([]string, v.Len())
		for i := range ls {
			ls[i] = formatLocator(v.At(i))
		}
		s := "locators=[" + strings.Join(ls, ", ") + "]"
		if n := v.Unsupported(); n > 0 {
			s += fmt.Sprintf(" +%d of unsupported type", n)
		}
		return s, nil
	case ParamNATTraversalMode:
		v, err := ParseNATTraversalMode(c)
		if err != nil {
			return "", err
		}
		return "modes=" + u16Names(v.Modes, NATModeName), nil
	case ParamTransactionPacing:
		v, err := ParseTransactionPacing(c)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("min-ta=%v", v.Duration()), nil
	case ParamRegInfo:
		v, err := ParseRegInfo(c)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("min-lifetime=%s max-lifetime=%s types=%s", regLifetime(v.MinLifetime), regLifetime(v.MaxLifetime), regTypes(v.Types)), nil
	case ParamRegRequest, ParamRegResponse:
		if len(c) < 1 {
			return "", lengthError(t, 0, "at least 1")
		}
		return fmt.Sprintf("lifetime=%s types=%s", regLifetime(c[0]), regTypes(c[1:])), nil
	case ParamRegFailed:
		v, err := ParseRegFailed(c)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("failure=%d (%s) types=%s", v.FailureType, RegFailureName(v.FailureType), regTypes(v.Types)), nil
	case ParamRegFrom, ParamRelayFrom, ParamRelayTo, ParamRelayedAddress, ParamMappedAddress:
		v, err := parseTransportAddress(t, c)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("protocol=%d address=%v", v.Protocol, v.AddrPort()), nil
	case ParamPeerPermission:
		v, err := ParsePeerPermission(c)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("protocol=%d relay=%v peer=%v ospi=0x%08x ispi=0x%08x", v.Protocol,
			netip.AddrPortFrom(v.RAddr, v.RPort), netip.AddrPortFrom(v.PAddr, v.PPort), v.OSPI, v.ISPI), nil
	case ParamCandidatePriority:
		v, err := ParseCandidatePriority(c)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("priority=%d", v.Priority), nil
	case ParamNominate:
		if _, err := ParseNominate(c); err != nil {
			return "", err
		}
		return "", nil
	case ParamFrom:
		v, err := ParseFrom(c)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("address=%v", v.Addr), nil
	case ParamViaRVS:
		v, err := ParseViaRVS(c)
		if err != nil {
			return "", err
		}
		as := make([]string, v.Addrs.Len())
		for i := range as {
			as[i] = v.Addrs.At(i).String()
		}
		return "addresses=[" + strings.Join(as, " ") + "]", nil
	case ParamRVSHMAC, ParamRelayHMAC:
		if err := checkMACLen(t, c); err != nil {
			return "", err
		}
		return fmt.Sprintf("hmac=%s", hexPrefix(c)), nil
	case ParamEchoRequestSigned, ParamEchoResponseSigned, ParamEchoRequestUnsigned, ParamEchoResponseUnsigned:
		return "opaque=" + hexPrefix(c), nil
	case ParamHIPMAC, ParamHIPMAC2:
		if err := checkMACLen(t, c); err != nil {
			return "", err
		}
		return fmt.Sprintf("hmac=%s", hexPrefix(c)), nil
	case ParamHIPSignature, ParamHIPSignature2:
		v, err := parseSignature(t, c)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("alg=%s sig=%s", AlgName(v.Alg), hexPrefix(v.Sig)), nil
	}
	if len(c) == 0 {
		return "", nil
	}
	return hexPrefix(c), nil
}

// formatLocator renders one LOCATOR_SET locator.
func formatLocator(l Locator) string {
	var sb strings.Builder
	sb.WriteString(TrafficName(l.Traffic))
	if l.Preferred {
		sb.WriteString(" preferred")
	}
	fmt.Fprintf(&sb, " lifetime=%ds", l.Lifetime)
	switch l.Type {
	case LocatorTypeAddr:
		fmt.Fprintf(&sb, " %v", l.Addr)
	case LocatorTypeESP:
		fmt.Fprintf(&sb, " spi=0x%08x %v", l.SPI, l.Addr)
	case LocatorTypeTransport:
		fmt.Fprintf(&sb, " %s protocol=%d %v priority=%d spi=0x%08x", KindName(l.Kind), l.Protocol,
			netip.AddrPortFrom(l.Addr, l.Port), l.Priority, l.SPI)
	}
	return sb.String()
}

// regLifetime shows a registration lifetime octet and its duration.
func regLifetime(x uint8) string {
	if x == 0 {
		return "0 (cancel)"
	}
	return fmt.Sprintf("%d (%v)", x, LifetimeToDuration(x).Round(time.Millisecond))
}

// regTypes shows a list of Registration Types.
func regTypes(ts []byte) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = RegTypeName(t)
	}
	return "[" + strings.Join(s, " ") + "]"
}

func u16Names(l U16List, name func(uint16) string) string {
	s := make([]string, l.Len())
	for i := range s {
		s[i] = name(l.At(i))
	}
	return "[" + strings.Join(s, " ") + "]"
}

// hexPrefix shows up to 8 octets in hex and the total size.
func hexPrefix(b []byte) string {
	const max = 8
	if len(b) <= max {
		return hex.EncodeToString(b) + fmt.Sprintf(" (%d octets)", len(b))
	}
	return hex.EncodeToString(b[:max]) + fmt.Sprintf("… (%d octets)", len(b))
}
