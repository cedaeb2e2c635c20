package handshake

import (
	"crypto/rand"
	"errors"
	"io"
	"slices"
	"time"

	"hipnet.dev/esp"
	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
)

// Config configures an Endpoint. The zero value of every field but
// Identity selects a sensible default.
type Config struct {
	// Identity is the host's private key; its HIT names the host.
	Identity *hostid.PrivateKey

	// Rand is the source of randomness (SPIs, nonces, DH keys); nil means
	// crypto/rand.Reader.
	Rand io.Reader

	// DHGroups lists the Diffie-Hellman groups in preference order
	// (RFC 7401 §5.2.6). Default: NIST P-256 (7), P-384 (8), and the
	// mandatory 1536-bit MODP group (3).
	DHGroups []uint8

	// HIPCiphers lists the ENCRYPTED ciphers in preference order
	// (RFC 7401 §5.2.8). Default: AES-128-CBC, AES-256-CBC. NULL is
	// accepted only when listed here explicitly (it is for tests).
	HIPCiphers []uint16

	// ESPSuites lists the ESP transforms in preference order (RFC 7402
	// §5.1.2). Default esp.DefaultSuites(): AES-GCM-16, AES-128-CBC with
	// HMAC-SHA-256. Authentication-only suites are used only when listed
	// (RFC 7402 §3.3.5).
	ESPSuites []esp.Suite

	// HITSuites lists the HIT suites accepted from peers, in preference
	// order, announced in R1's HIT_SUITE_LIST. Default: ECDSA/SHA-384,
	// RSA/SHA-256.
	HITSuites []hostid.Suite

	// EncryptHostID sends the Initiator's HOST_ID inside ENCRYPTED in I2
	// (RFC 7401 §5.3.3), hiding the identity from passive observers.
	EncryptHostID bool

	// PuzzleDifficulty is #K, the number of low-order zero bits the
	// Initiator must find (RFC 7401 §4.1.2). Default 4; raise it under
	// load with Endpoint.SetPuzzleDifficulty.
	PuzzleDifficulty uint8

	// MaxPuzzleDifficulty is the largest #K this host solves as an
	// Initiator. Default 24.
	MaxPuzzleDifficulty uint8

	// InlinePuzzle is the largest #K an Initiator solves inside the state
	// machine (at most 2^(K+5) hashes, well under a millisecond at the
	// default 8). Harder puzzles are handed to the caller with EventPuzzle.
	InlinePuzzle uint8

	// LoadThreshold is the rate of I2s with a correct puzzle solution,
	// per second, above which the Responder raises #K (load.go), counted
	// in P-256 exchanges: each costs a Diffie-Hellman computation before
	// its HIP_MAC can be checked (about 60 µs for P-256 on a server core),
	// and an I2 in a costlier group counts as that many P-256 ones
	// (dhCost), so that an attacker who picks the costliest group gets no
	// more work per solved puzzle. The default, 1000, is about 6% of a
	// core spent on unauthenticated work: beyond it the Initiators pay
	// more, until the rate falls back under it. A negative value turns
	// the adaptation off.
	LoadThreshold int

	// MaxLoadDifficulty caps the #K the load can raise the puzzle to.
	// Default 16: about 65 000 hashes, tens of milliseconds for an honest
	// Initiator, while an attacker's every I2 costs as much.
	MaxLoadDifficulty uint8

	// R1Lifetime is how long one R1 generation (Diffie-Hellman key,
	// puzzle secret, R1_COUNTER) is offered before it is rotated; I2s
	// answering the previous generation are still accepted (RFC 7401
	// §6.7.1 "Delta S"). Default 60 s.
	R1Lifetime time.Duration

	// RetransmitTimeout is the first retransmission timeout of I1, I2,
	// UPDATE and CLOSE; it doubles on each retry up to
	// MaxRetransmitTimeout. Defaults 1 s (RFC 9028 §4.2) and 8 s.
	RetransmitTimeout    time.Duration
	MaxRetransmitTimeout time.Duration

	// Retries is I1_RETRIES_MAX, I2_RETRIES_MAX and UPDATE_RETRY_MAX
	// (RFC 7401 §4.4.3, §6.11). Default 5.
	Retries int

	// CloseLinger is how long E-FAILED lasts before the association goes
	// back to UNASSOCIATED. Default 10 s.
	CloseLinger time.Duration

	// UAL (Unused Association Lifetime) and MSL (Maximum Segment
	// Lifetime) time CLOSING and CLOSED (RFC 7401 §4.4.1, Tables 7 and
	// 8): CLOSING retransmits its CLOSE until UAL+MSL has passed, CLOSED
	// answers retransmitted CLOSEs for UAL+2MSL. Defaults 15 min (the
	// stack's idle timeout) and 2 min (§4.4.1). A closed association keeps
	// only what those answers need (Association.shed).
	UAL, MSL time.Duration

	// AllocateSPI returns a fresh non-zero inbound SPI unique on this
	// host. Default: random (the caller should check uniqueness).
	AllocateSPI func() uint32

	// Registrar, if set, makes this host a registrar (RFC 8003): R1s
	// announce its REG_INFO and REG_REQUESTs are decided by it. Without
	// it, every REG_REQUEST is answered with REG_FAILED "unavailable".
	Registrar *Registrar

	// NATModes lists the NAT traversal modes (RFC 5770 §4.3;
	// wire.NATModeICESTUNUDP, wire.NATModeUDPEncapsulation) this host
	// offers in R1 and accepts in an R1, most preferred first. Nil: none,
	// so R1 carries no NAT_TRAVERSAL_MODE and I2 selects none.
	NATModes []uint16

	// MinTa is the least time between two connectivity checks this host
	// announces with ICE-STUN-UDP, in TRANSACTION_PACING in R1 and I2
	// (RFC 5770 §4.4), whole milliseconds from 20 ms (the floor §4.4 sets)
	// to 65.535 s. Zero: DefaultMinTa.
	MinTa time.Duration

	// Candidates returns this host's ICE candidates for a base exchange
	// with peer, as LOCATOR_SET transport locators, sent inside ENCRYPTED
	// in I2 and R2 when ICE-STUN-UDP is selected. It is called while I2
	// or R2 is built and must not block. Nil: none are sent.
	Candidates func(peer wire.HIT) []wire.Locator
}

const defaultPuzzleDifficulty = 4

// Connectivity check pacing (RFC 5770 §4.4).
const (
	// DefaultMinTa is Config.MinTa when zero: 50 ms, the value RFC 9028
	// §4.4 makes the default for its connectivity checks (its Appendix A
	// explains why 500 ms is needlessly slow). RFC 5770 §4.4 has the
	// value configurable, and 500 ms only where none is configured.
	DefaultMinTa = 50 * time.Millisecond
	// UnannouncedTa is a peer's Ta when its base exchange carried no
	// TRANSACTION_PACING: "a Ta value of 500 ms MUST be used as that
	// host's minimum value" (RFC 5770 §4.4).
	UnannouncedTa = 500 * time.Millisecond
	// minMinTa: "Hosts SHOULD NOT use values smaller than 20 ms".
	minMinTa = 20 * time.Millisecond
	// maxMinTa is what the Association keeps: 16 bits of milliseconds.
	maxMinTa = 65535 * time.Millisecond
)

func (c *Config) withDefaults() (Config, error) {
	d := *c
	if d.Identity == nil {
		return d, errors.New("handshake: Config.Identity is required")
	}
	if d.Rand == nil {
		d.Rand = rand.Reader
	}
	if d.MinTa == 0 {
		d.MinTa = DefaultMinTa
	}
	d.MinTa = min(max(d.MinTa, minMinTa), maxMinTa)
	if len(d.DHGroups) == 0 {
		d.DHGroups = []uint8{wire.DHGroupP256, wire.DHGroupP384, wire.DHGroupMODP1536}
	}
	for _, g := range d.DHGroups {
		if lookupGroup(g) == nil {
			return d, errors.New("handshake: unsupported DH group in Config.DHGroups")
		}
	}
	if len(d.HIPCiphers) == 0 {
		d.HIPCiphers = []uint16{wire.CipherAES128CBC, wire.CipherAES256CBC}
	}
	for _, c := range d.HIPCiphers {
		if _, ok := cipherKeyLen(c); !ok {
			return d, errors.New("handshake: unsupported cipher in Config.HIPCiphers")
		}
	}
	if len(d.ESPSuites) == 0 {
		d.ESPSuites = esp.DefaultSuites()
	}
	for _, s := range d.ESPSuites {
		if !s.Supported() {
			return d, errors.New("handshake: unsupported suite in Config.ESPSuites")
		}
	}
	if len(d.HITSuites) == 0 {
		d.HITSuites = []hostid.Suite{hostid.SuiteECDSASHA384, hostid.SuiteRSADSASHA256}
	}
	if !slices.Contains(d.HITSuites, d.Identity.Public().Suite()) {
		d.HITSuites = append(d.HITSuites, d.Identity.Public().Suite())
	}
	if d.PuzzleDifficulty == 0 {
		d.PuzzleDifficulty = defaultPuzzleDifficulty
	}
	if d.MaxPuzzleDifficulty == 0 {
		d.MaxPuzzleDifficulty = 24
	}
	d.MaxPuzzleDifficulty = min(d.MaxPuzzleDifficulty, maxPuzzleK)
	if d.InlinePuzzle == 0 {
		d.InlinePuzzle = 8
	}
	if d.LoadThreshold == 0 {
		d.LoadThreshold = 1000
	}
	if d.MaxLoadDifficulty == 0 {
		d.MaxLoadDifficulty = 16
	}
	d.MaxLoadDifficulty = min(max(d.MaxLoadDifficulty, d.PuzzleDifficulty), maxPuzzleK)
	d.PuzzleDifficulty = min(d.PuzzleDifficulty, maxPuzzleK)
	if d.R1Lifetime <= 0 {
		d.R1Lifetime = 60 * time.Second
	}
	if d.RetransmitTimeout <= 0 {
		d.RetransmitTimeout = time.Second
	}
	if d.MaxRetransmitTimeout < d.RetransmitTimeout {
		d.MaxRetransmitTimeout = 8 * d.RetransmitTimeout
	}
	if d.Retries <= 0 {
		d.Retries = 5
	}
	if d.CloseLinger <= 0 {
		d.CloseLinger = 10 * time.Second
	}
	if d.UAL <= 0 {
		d.UAL = 15 * time.Minute
	}
	if d.MSL <= 0 {
		d.MSL = 2 * time.Minute
	}
	return d, nil
}
