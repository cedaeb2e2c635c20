package handshake

// State is a HIP association state of RFC 7401 §4.4.2.
type State uint8

const (
	Unassociated State = iota
	I1Sent
	I2Sent
	R2Sent
	Established
	Closing
	Closed
	EFailed
)

var stateNames = [...]string{"UNASSOCIATED", "I1-SENT", "I2-SENT", "R2-SENT", "ESTABLISHED", "CLOSING", "CLOSED", "E-FAILED"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "STATE(?)"
}

// CanSend reports whether ESP data may be sent in this state.
func (s State) CanSend() bool { return s == Established || s == R2Sent }
