package benchcmd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tollgate-dev/tollgate/internal/bench"
	"github.com/tollgate-dev/tollgate/internal/logbuf"
)

func TestParseBenchFlags(t *testing.T) {
	c, err := parseBenchFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.opts.Rate != 200 || c.opts.Duration != 10*time.Second || c.opts.Warmup != 2*time.Second || c.opts.Conns != 2 ||
		c.opts.HoldStreams != 1000 || c.opts.Rounds != 2 || !c.matchHeap || c.json {
		t.Errorf("defaults: %+v", c)
	}
	c, err = parseBenchFlags([]string{"--closed", "0", "--hold", "0", "--run", "2k-*", "--json"}, io.Discard)
	if err != nil || c.opts.Closed >= 0 || c.opts.HoldStreams >= 0 || c.run != "2k-*" || !c.json {
		t.Errorf("zeros must skip: %+v %v", c, err)
	}
	if c, err = parseBenchFlags([]string{"--soak", "100000"}, io.Discard); err != nil || c.soak != 100000 {
		t.Errorf("--soak: %+v %v", c, err)
	}
	for _, bad := range [][]string{{"--rate", "0"}, {"--duration", "-1s"}, {"--conns", "0"}, {"--rounds", "0"}, {"--soak", "-1"}, {"extra"}, {"--nope"}} {
		if _, err := parseBenchFlags(bad, io.Discard); err != ErrUsage {
			t.Errorf("%v: err = %v", bad, err)
		}
	}
}

func TestSelectScenarios(t *testing.T) {
	all, err := bench.LoadScenarios(bench.DefaultScenarios())
	if err != nil {
		t.Fatal(err)
	}
	got, err := selectScenarios(all, "2k-*, deny-bad-key")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range got {
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "2k-json,2k-sse50,deny-bad-key" {
		t.Errorf("selected %v", names)
	}
	if _, err := selectScenarios(all, "nothing-like-this"); err == nil {
		t.Error("a pattern matching nothing was accepted")
	}
}

func TestBenchEchoServes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var stderr logbuf.Buffer
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"echo", "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--ballast-mib", "1"}, io.Discard, &stderr, nil)
	}()
	var addrs map[string]string
	for deadline := time.Now().Add(10 * time.Second); addrs == nil; {
		if time.Now().After(deadline) {
			t.Fatalf("no address line: %q", stderr.String())
		}
		sc := bufio.NewScanner(strings.NewReader(stderr.String()))
		for sc.Scan() {
			json.Unmarshal(sc.Bytes(), &addrs) //nolint:errcheck // retried until it parses
		}
		time.Sleep(10 * time.Millisecond)
	}
	conn, err := grpc.NewClient(addrs["grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s, err := extprocv3.NewExternalProcessorClient(conn).Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: ":path", RawValue: []byte("/")}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetRequestHeaders() == nil || resp.GetRequestHeaders().GetResponse() != nil {
		t.Errorf("echo replied %v; want an empty request_headers CONTINUE", resp)
	}
	m, err := bench.Scrape(ctx, "http://"+addrs["admin"]+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Get("go_memstats_mallocs_total"); !ok {
		t.Error("echo metrics lack the Go collector")
	}
	resp2, err := http.Post("http://"+addrs["admin"]+"/ballast?live=20000000", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	held, _ := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	if n, err := strconv.Atoi(strings.TrimSpace(string(held))); err != nil || n <= 0 || n > 20000000 {
		t.Errorf("ballast answer %q", held)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("echo ended with %v", err)
	}
}

func TestBenchBody(t *testing.T) {
	var out, errb bytes.Buffer
	if err := Run(context.Background(), []string{"body", "--bytes", "4096", "--stream=false"}, &out, &errb, nil); err != nil {
		t.Fatalf("%v: %s", err, errb.String())
	}
	var m map[string]any
	if out.Len() != 4096 || json.Unmarshal(out.Bytes(), &m) != nil || m["stream"] != false || m["model"] != "claude-opus-4-8" {
		t.Errorf("body: %d bytes, %v", out.Len(), m["stream"])
	}
}

// `bench serve` reads its own flags, hands the rest to the tollgate command's
// serve, and starts its profiling listener only once those parsed.
func TestBenchServeCallsServe(t *testing.T) {
	var got []string
	ran := false
	serve := func(args []string, _ io.Writer) (func(context.Context) error, error) {
		got = args
		if len(args) > 0 && args[0] == "--bad" {
			return nil, errors.New("bad serve flag")
		}
		return func(context.Context) error { ran = true; return nil }, nil
	}
	var stderr bytes.Buffer
	err := Run(context.Background(), []string{"serve", "--pprof-addr", "127.0.0.1:0", "--", "--grpc-addr", "127.0.0.1:0"}, io.Discard, &stderr, serve)
	if err != nil || !ran || strings.Join(got, " ") != "--grpc-addr 127.0.0.1:0" {
		t.Fatalf("err %v, ran %v, serve got %q", err, ran, got)
	}
	var line map[string]string
	if err := json.Unmarshal(stderr.Bytes(), &line); err != nil || line["msg"] != "bench pprof" || line["pprof"] == "" {
		t.Errorf("pprof line %q: %v", stderr.String(), err)
	}

	stderr.Reset()
	ran = false
	err = Run(context.Background(), []string{"serve", "--", "--bad"}, io.Discard, &stderr, serve)
	if err == nil || err.Error() != "bad serve flag" || ran || stderr.Len() != 0 {
		t.Errorf("a serve flag error: err %v, ran %v, stderr %q", err, ran, stderr.String())
	}
	if err := Run(context.Background(), []string{"serve", "--nope"}, io.Discard, io.Discard, serve); err != ErrUsage {
		t.Errorf("an unknown bench serve flag: %v", err)
	}
}
