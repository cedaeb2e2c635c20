package handshake

import (
	"crypto/hkdf"
	"errors"
)

// ErrNoKeys is returned by Export when the association has no keying
// material: before its base exchange has drawn it, or after CLOSE shed it.
var ErrNoKeys = errors.New("handshake: no keying material")

// exportPrefix separates exported secrets from KEYMAT: both expand the
// same PRK, and no KEYMAT info (sort(HIT-I | HIT-R), RFC 7401 §6.5, 32
// octets) starts with these octets, so no exported secret is ever a run
// of KEYMAT octets that keys HIP or ESP.
const exportPrefix = "hipnet export "

// Export returns n octets of secret keying material for label, known only
// to the two hosts of the association: HKDF-Expand (RFC 5869) of the PRK
// of KEYMAT (RFC 7401 §6.5, so a function of the Diffie-Hellman secret)
// with info = "hipnet export " | label | sort(HIT-I | HIT-R). It is the
// keying-material exporter of TLS (RFC 5705, RFC 8446 §7.5) for HIP:
// upper layers bind themselves to this association with it, as the
// stream layer does for its QUIC connections. Both hosts get the same
// octets for the same label; drawing from KEYMAT does not change them, a
// rekey with a new Diffie-Hellman exchange does.
func (a *Association) Export(label string, n int) ([]byte, error) {
	if a.km == nil {
		return nil, ErrNoKeys
	}
	info := make([]byte, 0, len(exportPrefix)+len(label)+len(a.km.info))
	info = append(append(append(info, exportPrefix...), label...), a.km.info[:]...)
	return hkdf.Expand(a.km.newHash, a.km.prk(), string(info), n)
}
