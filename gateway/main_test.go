package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
)

// childConfigEnv makes this test binary serve instead of testing: it runs Run
// with the JSON-encoded Config the variable holds until SIGTERM, as `tollgate
// serve` would. The crash test starts and kills such children.
const childConfigEnv = "GATEWAY_TEST_CHILD_CONFIG"

func TestMain(m *testing.M) {
	if cfg, ok := os.LookupEnv(childConfigEnv); ok {
		os.Exit(serveChild(cfg))
	}
	os.Exit(m.Run())
}

// serveChild runs Run on cfgJSON and returns the exit code the tollgate
// command would.
func serveChild(cfgJSON string) int {
	var c Config
	if err := json.Unmarshal([]byte(cfgJSON), &c); err != nil {
		fmt.Fprintln(os.Stderr, "gateway test child:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := Run(ctx, c, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "tollgate:", err)
		return 1
	}
	return 0
}
