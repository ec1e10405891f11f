package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	o, err := parse([]string{"harness", "--config", "e.yaml", "--cluster", "tollgate=127.0.0.1:1", "--cluster", "prov_demo=unix:/tmp/s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.config != "e.yaml" || o.clusters["tollgate"] != "127.0.0.1:1" || o.clusters["prov_demo"] != "unix:/tmp/s" {
		t.Errorf("parsed %+v", o)
	}
	t.Setenv("TOLLGATE_DEMO_PROVIDER_KEY", "from-env")
	if o, err := parse([]string{"fake-provider"}, io.Discard); err != nil || o.apiKey != "from-env" {
		t.Errorf("fake-provider key %q, %v", o.apiKey, err)
	}
	for _, bad := range [][]string{nil, {"proxy"}, {"harness", "--cluster", "x"}, {"dev", "extra"}} {
		if _, err := parse(bad, io.Discard); err == nil {
			t.Errorf("parse(%q) succeeded", bad)
		}
	}
}

// TestFakeProviderCommand runs fake-provider until its context ends: the banner is
// printed, the fake provider answers, and shutdown is clean.
func TestFakeProviderCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	done := make(chan error, 1)
	pr, pw := io.Pipe()
	go func() {
		done <- run(ctx, []string{"fake-provider", "--addr", "127.0.0.1:0"}, pw, io.Discard)
		pw.Close()
	}()
	buf := make([]byte, 4096)
	for !strings.Contains(out.String(), "http://") {
		n, err := pr.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		out.Write(buf[:n])
	}
	if !strings.Contains(out.String(), "not a production proxy") {
		t.Errorf("no banner in %q", out.String())
	}
	url := strings.Fields(out.String()[strings.Index(out.String(), "http://"):])[0]
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	cancel()
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
