//go:build !linux

package netmon

import "log/slog"

// openSource polls net.Interfaces: there is no netlink here.
func openSource(*slog.Logger) source { return source{read: readInterfaces} }
