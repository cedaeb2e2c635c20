package streams

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/quic-go/quic-go"

	"hipnet.dev/overlay"
)

// TestStreamError: quic-go's errors become the errno a TCP socket gives
// for the same event, the quic-go error stays reachable with errors.As,
// and a peer's reset is never net.ErrClosed (which says we closed).
func TestStreamError(t *testing.T) {
	remoteApp := &quic.ApplicationError{Remote: true, ErrorCode: connCodeClosed}
	for _, tc := range []struct {
		name      string
		err       error
		read      bool
		want      error // errors.Is; nil: err returned unchanged
		closedErr bool  // errors.Is(net.ErrClosed) expected
	}{
		{"stream reset by peer, read", &quic.StreamError{Remote: true, ErrorCode: streamCodeClosed}, true, syscall.ECONNRESET, false},
		{"stream stopped by peer, write", &quic.StreamError{Remote: true, ErrorCode: streamCodeClosed}, false, syscall.EPIPE, false},
		{"stream cancelled here", &quic.StreamError{ErrorCode: streamCodeClosed}, true, nil, false},
		{"peer's node closing", remoteApp, true, syscall.ECONNRESET, false},
		{"peer closed before confirmation", &quic.TransportError{Remote: true, ErrorCode: quic.ApplicationErrorErrorCode}, true, syscall.ECONNRESET, false},
		{"peer's TLS alert", &quic.TransportError{Remote: true, ErrorCode: 0x100 + 42}, true, nil, true},
		{"peer closed the association", &quic.ApplicationError{ErrorCode: connCodeLeft}, false, syscall.EPIPE, false},
		{"association lost", &quic.ApplicationError{ErrorCode: connCodeGone}, true, syscall.ECONNABORTED, false},
		{"retired here", &quic.ApplicationError{ErrorCode: connCodeRetired}, true, syscall.ECONNABORTED, false},
		{"our Manager closed", &quic.ApplicationError{ErrorCode: connCodeClosed}, true, overlay.ErrClosed, true},
		{"peer silent", &quic.IdleTimeoutError{}, true, syscall.ETIMEDOUT, false},
		{"stateless reset", &quic.StatelessResetError{}, true, syscall.ECONNRESET, false},
		{"peer left, the packet found no SA", fmt.Errorf("%w (%w)", overlay.ErrPeerLeft, overlay.ErrUnknownPeer), true, syscall.ECONNRESET, false},
		{"end of stream", io.EOF, true, nil, false},
		{"refused", overlay.ErrRefused, true, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := streamError(tc.err, tc.read)
			if tc.want == nil {
				if got != tc.err {
					t.Fatalf("%v changed to %v", tc.err, got)
				}
			} else if !errors.Is(got, tc.want) {
				t.Fatalf("%v: %v is not %v", tc.err, got, tc.want)
			}
			if errors.Is(got, net.ErrClosed) != tc.closedErr {
				t.Errorf("%v: errors.Is(net.ErrClosed) = %v", got, !tc.closedErr)
			}
			left := tc.name == "peer closed the association" || tc.name == "peer left, the packet found no SA"
			if errors.Is(got, overlay.ErrPeerLeft) != left {
				t.Errorf("%v: errors.Is(overlay.ErrPeerLeft) = %v", got, !left)
			}
			if streamError(got, tc.read) != got {
				t.Errorf("mapping %v again changed it", got)
			}
			var ended *endedError
			if !errors.As(got, &ended) {
				return
			}
			// The quic-go error is there for errors.As, and in the text.
			switch want := tc.err.(type) {
			case *quic.ApplicationError:
				var ae *quic.ApplicationError
				if !errors.As(got, &ae) || ae != want {
					t.Errorf("errors.As found %v, want %v", ae, want)
				}
			case *quic.StreamError:
				var se *quic.StreamError
				if !errors.As(got, &se) || se != want {
					t.Errorf("errors.As found %v, want %v", se, want)
				}
			}
			var ne net.Error
			if !errors.As(got, &ne) || ne.Timeout() != (tc.want == syscall.ETIMEDOUT) {
				t.Errorf("%v: net.Error %v, Timeout %v", got, ne, ne != nil && ne.Timeout())
			}
		})
	}
}
