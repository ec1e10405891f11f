package envoytest

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// fakeServer is what every fake provider shares: its HTTP server's
// lifecycle (Start through listen, Addr, URL, Close waiting for in-flight
// handlers), the requests it received and the violations of the provider
// contract it saw. A fake embeds it and adds its own handler.
type fakeServer struct {
	mu         sync.Mutex
	requests   []RecordedRequest
	violations []string

	ln       net.Listener
	srv      *http.Server
	active   handlerGroup
	serveErr chan error
}

// listen serves h on addr ("127.0.0.1:0" typically) until Close; name is
// the fake's, for errors.
func (f *fakeServer) listen(name, addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: listen %s: %w", name, addr, err)
	}
	f.ln = ln
	f.srv = &http.Server{Handler: h, ReadHeaderTimeout: time.Minute}
	f.serveErr = make(chan error, 1)
	go func() { f.serveErr <- f.srv.Serve(ln) }()
	return nil
}

// Addr is the listener address (after Start).
func (f *fakeServer) Addr() string { return f.ln.Addr().String() }

// URL is "http://" plus Addr.
func (f *fakeServer) URL() string { return "http://" + f.Addr() }

// Close stops the server and waits for in-flight handlers.
func (f *fakeServer) Close() error {
	if f.srv == nil {
		return nil
	}
	err := f.srv.Close()
	<-f.serveErr
	f.active.wait()
	f.srv = nil
	return err
}

// Requests returns a copy of every request received so far.
func (f *fakeServer) Requests() []RecordedRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]RecordedRequest, len(f.requests))
	for i, r := range f.requests {
		out[i] = RecordedRequest{Method: r.Method, Path: r.Path, Host: r.Host, Header: r.Header.Clone(), Body: bytes.Clone(r.Body)}
	}
	return out
}

// Violations returns the assertion failures seen so far.
func (f *fakeServer) Violations() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.violations...)
}

// record adds r, whose body is body, to the requests received.
func (f *fakeServer) record(r *http.Request, body []byte) {
	f.mu.Lock()
	f.requests = append(f.requests, RecordedRequest{Method: r.Method, Path: r.URL.RequestURI(), Host: r.Host, Header: r.Header.Clone(), Body: body})
	f.mu.Unlock()
}

// violate records violations.
func (f *fakeServer) violate(msgs ...string) {
	f.mu.Lock()
	f.violations = append(f.violations, msgs...)
	f.mu.Unlock()
}
