package resolve

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/miekg/dns"

	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
)

// PK algorithm values of the HIP RR: the IPSECKEY Algorithm Types (RFC
// 8005 §5.2 and §9, RFC 4025). They are not the HI algorithm values of
// HOST_ID (RFC 7401 §5.2.9: DSA 3, RSA 5, ECDSA 7).
const (
	pkAlgDSA   = 1 // RFC 2536 format; hostid does not implement DSA
	pkAlgRSA   = 2 // RFC 3110 format, the same octets as the RSA HI
	pkAlgECDSA = 3 // RFC 6605 format: x | y, no curve field
)

// The public key field of an ECDSA HIP RR (RFC 8005 §5.5) is "the
// algorithm-specific portion of the DNSKEY RR RDATA for ECDSA [RFC6605]":
// the point as x | y, 64 octets on P-256 and 96 on P-384 (RFC 6605 §4),
// with no curve field, since in DNSSEC the curve comes with the algorithm
// number. The HOST_ID HI is ECC Curve | point (RFC 7401 §5.2.9), and the
// HIT hashes those octets; the point may be 0x04|x|y or x|y there (see
// handshake/hostid/ecdsa.go). So the HI, and with it the HIT, cannot be
// read off the RR: we rebuild the two HIs the key can have, curve from the
// length, 0x04|x|y first (what hipnet, cutehip and HIPL send), and keep the
// one whose HIT is the record's. The lengths of the four forms of one
// curve differ, so at most one of them matches a given HIT.
//
// Leniency: a public key field that is already a HOST_ID HI (ECC Curve 1
// or 2 followed by a point in either form: 66, 67, 98 or 99 octets, none
// of which is an RFC 6605 length) is taken as it is, for publishers that
// copied their HOST_ID into DNS. The HIT check decides either way.

// hostIdentityCandidates returns the HI algorithm and the Host Identity
// fields that the public key field pk of a HIP RR with PK algorithm alg
// can stand for, most likely first.
func hostIdentityCandidates(alg uint8, pk []byte) (hostid.Algorithm, [][]byte, error) {
	switch alg {
	case pkAlgRSA:
		return hostid.AlgRSA, [][]byte{pk}, nil
	case pkAlgECDSA:
		var curve uint16
		switch len(pk) {
		case 64:
			curve = hostid.CurveP256
		case 96:
			curve = hostid.CurveP384
		case 66, 67:
			if binary.BigEndian.Uint16(pk) == hostid.CurveP256 {
				return hostid.AlgECDSA, [][]byte{pk}, nil
			}
		case 98, 99:
			if binary.BigEndian.Uint16(pk) == hostid.CurveP384 {
				return hostid.AlgECDSA, [][]byte{pk}, nil
			}
		}
		if curve == 0 {
			return 0, nil, fmt.Errorf("%w: ECDSA public key of %d octets (RFC 6605: 64 for P-256, 96 for P-384)", ErrBadRecord, len(pk))
		}
		uncompressed := binary.BigEndian.AppendUint16(nil, curve)
		uncompressed = append(append(uncompressed, 4), pk...)
		plain := binary.BigEndian.AppendUint16(nil, curve)
		plain = append(plain, pk...)
		return hostid.AlgECDSA, [][]byte{uncompressed, plain}, nil
	case pkAlgDSA:
		return 0, nil, fmt.Errorf("%w: PK algorithm 1 (DSA)", hostid.ErrUnsupportedAlgorithm)
	}
	return 0, nil, fmt.Errorf("%w: PK algorithm %d", hostid.ErrUnsupportedAlgorithm, alg)
}

// verifyHIP decodes a HIP RR and returns its HIT and Host Identity, after
// checking that the HI hashes to the HIT (RFC 8005 §4.1: the host "MUST
// always calculate the HI-derivative HIT"). An RR that fails is refused:
// ErrBadRecord, ErrHITMismatch or hostid's errors.
func verifyHIP(rr *dns.HIP) (wire.HIT, *hostid.PublicKey, error) {
	var hit wire.HIT
	raw, err := hex.DecodeString(rr.Hit)
	if err != nil || len(raw) != len(hit) || int(rr.HitLength) != len(hit) {
		return hit, nil, fmt.Errorf("%w: HIT of %d octets, want 16", ErrBadRecord, rr.HitLength)
	}
	copy(hit[:], raw)
	pk, err := base64.StdEncoding.DecodeString(rr.PublicKey)
	if err != nil || len(pk) == 0 {
		return hit, nil, fmt.Errorf("%w: public key is not base64 of a key", ErrBadRecord)
	}
	alg, his, err := hostIdentityCandidates(rr.PublicKeyAlgorithm, pk)
	if err != nil {
		return hit, nil, err
	}
	var (
		parseErr error
		computed wire.HIT
	)
	for _, hi := range his {
		pub, err := hostid.ParseHostIdentity(alg, hi)
		if err != nil {
			parseErr = err
			continue
		}
		if wire.HIT(pub.HIT()) == hit {
			return hit, pub, nil
		}
		if computed.IsZero() {
			computed = pub.HIT()
		}
	}
	if !computed.IsZero() {
		return hit, nil, fmt.Errorf("%w: record HIT %v, the %v key's HIT %v", ErrHITMismatch, hit, alg, computed)
	}
	return hit, nil, fmt.Errorf("%w: %w", ErrBadRecord, parseErr)
}

// NewHIPRR returns the HIP RR (RFC 8005 §5) that publishes pub under name,
// with the rendezvous servers rvs in order of preference, for a zone file
// (its String method gives the presentation format of §6) or a DNS server.
// The HIT is pub.HIT(); the public key is the RFC 3110 key for RSA (the HI
// itself) and x | y for ECDSA (RFC 6605 §4, the HI without its curve field
// and 0x04 prefix). The class is IN. Names are made fully qualified.
func NewHIPRR(name string, ttl uint32, pub *hostid.PublicKey, rvs ...string) (*dns.HIP, error) {
	if pub == nil {
		return nil, fmt.Errorf("resolve: NewHIPRR: nil host identity")
	}
	if _, err := canonicalName(name); err != nil {
		return nil, err
	}
	hi := pub.HI()
	var (
		alg uint8
		pk  []byte
	)
	switch pub.Algorithm() {
	case hostid.AlgRSA:
		alg, pk = pkAlgRSA, hi
	case hostid.AlgECDSA:
		alg, pk = pkAlgECDSA, hi[2:]
		if len(pk)%2 == 1 {
			pk = pk[1:] // 0x04 | x | y
		}
	default:
		return nil, fmt.Errorf("%w: %v has no HIP RR encoding here", hostid.ErrUnsupportedAlgorithm, pub.Algorithm())
	}
	servers := make([]string, len(rvs))
	for i, s := range rvs {
		if _, err := canonicalName(s); err != nil {
			return nil, fmt.Errorf("rendezvous server: %w", err)
		}
		servers[i] = dns.Fqdn(s)
	}
	hit := pub.HIT()
	return &dns.HIP{
		Hdr: dns.RR_Header{
			Name:   dns.Fqdn(name),
			Rrtype: dns.TypeHIP,
			Class:  dns.ClassINET,
			Ttl:    ttl,
		},
		HitLength:          uint8(len(hit)),
		PublicKeyAlgorithm: alg,
		PublicKeyLength:    uint16(len(pk)),
		Hit:                strings.ToUpper(hex.EncodeToString(hit[:])),
		PublicKey:          base64.StdEncoding.EncodeToString(pk),
		RendezvousServers:  servers,
	}, nil
}
