package gateway

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate-dev/tollgate/internal/pgtest"
)

// TestServeRecordsToPostgres wires serve to a real PostgreSQL that is down
// when serve starts: serve starts anyway, a refused request's record spools,
// and once Postgres is back the record is in the records table (migrated by
// the sink before its first write) and the records API reads it from there.
func TestServeRecordsToPostgres(t *testing.T) {
	pg := pgtest.Start(t)
	url := pg.Database(t)
	pg.Stop()
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("admin-secret\n"), 0o600)
	grpcAddr, adminAddr, cancel, done, logs := startServe(t, func(c *Config) { c.PostgresURL, c.AdminTokenFile = url, tokenFile })

	stream := policyStream(t, grpcAddr)
	if err := stream.Send(headers(":method", "POST", ":path", "/v1/messages", "x-api-key", "wrong", "x-request-id", "rid-pg-1")); err != nil {
		t.Fatal(err)
	}
	if resp, err := stream.Recv(); err != nil || resp.GetImmediateResponse().GetStatus().GetCode() != 401 {
		t.Fatalf("want a 401, got %v %v", resp, err)
	}
	stream.CloseSend()
	stream.Recv() //nolint:errcheck // the end of the stream

	pg.Restart()
	var body string
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(body, "rid-pg-1") && time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+adminAddr+"/v1/records?limit=10", nil)
		req.Header.Set("authorization", "Bearer admin-secret")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(body, `"client_request_id":"rid-pg-1"`) || !strings.Contains(body, `"outcome":"denied"`) {
		t.Fatalf("records API: %s\nlogs:\n%s", body, logs.String())
	}
	ctx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM records WHERE client_request_id = 'rid-pg-1' AND outcome = 'denied'").Scan(&n); err != nil || n != 1 {
		t.Errorf("records table holds %d rows of the request (%v), want 1", n, err)
	}
	if !strings.Contains(logs.String(), "PostgreSQL not ready at start") {
		t.Errorf("no warning that Postgres was down at start; logs:\n%s", logs.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
}
