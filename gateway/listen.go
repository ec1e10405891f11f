package gateway

import (
	"net"
	"os"
	"strings"
)

// MaxGRPCMessage bounds one ext_proc message, in bytes. BUFFERED request bodies
// arrive whole and may be 32 MB (Anthropic's limit); grpc-go's default is 4 MiB.
const MaxGRPCMessage = 64 << 20

// Listen listens on addr: host:port for TCP, or unix:/path for a Unix socket,
// removing a stale socket file left by a crashed run first.
func Listen(addr string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		// A stale socket from a crashed run would block the bind.
		if fi, err := os.Stat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Remove(path)
		}
		return net.Listen("unix", path)
	}
	return net.Listen("tcp", addr)
}
