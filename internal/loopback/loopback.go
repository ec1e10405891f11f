// Package loopback holds FreeAddr, which tests use to pick a loopback address
// for a server they start.
package loopback

import (
	"net"
	"testing"
)

// FreeAddr returns a 127.0.0.1 address with a port that was free when it was
// asked for: it listens on port 0 and closes the listener again.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
