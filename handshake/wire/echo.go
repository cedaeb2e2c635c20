package wire

// Echo is one of the four echo parameters, which share one layout: opaque
// data only (RFC 7401 §5.2.20-5.2.23). A response copies the request's data
// unmodified.
//
//	ECHO_REQUEST_SIGNED    897   covered by HIP_MAC and signature
//	ECHO_RESPONSE_SIGNED   961   covered by HIP_MAC and signature
//	ECHO_RESPONSE_UNSIGNED 63425 after the signature, not covered
//	ECHO_REQUEST_UNSIGNED  63661 after the signature, not covered
type Echo struct {
	Type   ParamType
	Opaque []byte
}

// ParseEcho parses echo contents: any opaque data, even none. Opaque aliases
// contents. The contents do not tell which echo parameter they came from, so
// Type is left zero; use ParseEchoParam to get it from the TLV.
func ParseEcho(contents []byte) (Echo, error) {
	return Echo{Opaque: contents}, nil
}

// ParseEchoParam parses an echo parameter of any of the four types.
func ParseEchoParam(p Param) (Echo, error) {
	if !IsEcho(p.Type()) {
		return Echo{}, valueError(p.Type(), "not an echo parameter")
	}
	return Echo{Type: p.Type(), Opaque: p.Contents()}, nil
}

// IsEcho reports whether t is one of the four echo parameter types.
func IsEcho(t ParamType) bool {
	switch t {
	case ParamEchoRequestSigned, ParamEchoResponseSigned, ParamEchoResponseUnsigned, ParamEchoRequestUnsigned:
		return true
	}
	return false
}

func (e Echo) ParamType() ParamType { return e.Type }
func (e Echo) Len() int             { return len(e.Opaque) }
func (e Echo) Encode(b []byte)      { copy(b, e.Opaque) }
func (e Echo) validate() error {
	if !IsEcho(e.Type) {
		return valueError(e.Type, "Echo.Type must be one of the four echo parameter types")
	}
	return nil
}
