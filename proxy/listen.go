package proxy

import (
	"errors"
	"fmt"
	"net"
	"os"
)

// checkListen binds the TCP address addr with the standard library and
// closes the listener at once, so that a port that cannot be bound fails
// with the system's reason (for a busy port:
// "proxy: listen 127.0.0.1:9332: address already in use") before gnet
// tries it. gnet reports the same failure as "setsockopt: bad file
// descriptor", which sends operators looking in the wrong place.
//
// The error wraps the syscall error, so errors.Is(err,
// syscall.EADDRINUSE) holds for a busy port. Errors without one (an
// unresolvable host) wrap net.Listen's error. Another process can still
// take the port between this check and the real bind; the check only
// makes the common case, a second proxy or a leftover one, readable.
func checkListen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		// net.Listen says "listen tcp ADDR: bind: address already in use":
		// keep the operation and address once and the reason, not the
		// syscall name.
		var se *os.SyscallError
		if errors.As(err, &se) {
			err = se.Err
		}
		return fmt.Errorf("proxy: listen %s: %w", addr, err)
	}
	if err := ln.Close(); err != nil {
		return fmt.Errorf("proxy: listen %s: close the check listener: %w", addr, err)
	}
	return nil
}
