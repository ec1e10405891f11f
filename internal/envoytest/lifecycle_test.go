package envoytest

import (
	"bufio"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
)

// Close resets in-flight requests, closes their ext_proc streams and leaks
// no goroutine (TestMain runs goleak). Processor and provider listen on unix
// sockets here, as Config.Clusters allows.
func TestCloseWithInFlightStreamOverUnixSockets(t *testing.T) {
	dir := t.TempDir()
	procSock, upSock := filepath.Join(dir, "proc.sock"), filepath.Join(dir, "up.sock")

	ln, err := net.Listen("unix", procSock)
	if err != nil {
		t.Fatal(err)
	}
	p := &procServer{script: (*scriptStream).echo, srv: grpc.NewServer()}
	extprocsvc.RegisterExternalProcessorServer(p.srv, p)
	procDone := make(chan struct{})
	go func() { defer close(procDone); _ = p.srv.Serve(ln) }()
	defer func() { p.srv.Stop(); <-procDone }()

	fake := NewFakeAnthropic(FakeAnthropicConfig{APIKey: "k"})
	upLn, err := net.Listen("unix", upSock)
	if err != nil {
		t.Fatal(err)
	}
	upSrv := &http.Server{Handler: fake.Handler()}
	upDone := make(chan struct{})
	go func() { defer close(upDone); _ = upSrv.Serve(upLn) }()
	defer func() { _ = upSrv.Close(); <-upDone }()

	cfg := testConfig{filters: []string{extProc("p", `processing_mode: {response_body_mode: STREAMED}`)}}
	h, err := Start(Config{EnvoyYAML: cfg.write(t), Clusters: map[string]string{"proc": "unix:" + procSock, "up": "unix:" + upSock}})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", h.URL()+"/v1/messages", strings.NewReader(`{"model":"x-slow","stream":true}`))
	req.Header.Set("x-api-key", "k")
	req.Header.Set("anthropic-version", "2023-06-01")
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "event: message_start\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for {
		if _, err := br.ReadString('\n'); err != nil {
			break // the in-flight stream was reset
		}
	}
	if st := h.Stats(); st.ExtProcStreams != 1 || st.DownstreamResets != 1 {
		t.Errorf("stats %+v", st)
	}
}
