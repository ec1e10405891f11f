package envoytest

import (
	"context"
	"sync"

	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// procStream is one ext_proc gRPC stream, opened lazily by a filter for one
// HTTP request (or one upstream attempt). Messages are sent by a goroutine of
// its own, so a large body never blocks the request's event loop; replies and
// the final status are posted back to the loop.
type procStream struct {
	s      *requestStream
	f      *extProcFilter
	cancel context.CancelFunc
	cli    extprocsvc.ExternalProcessor_ProcessClient

	mu      sync.Mutex
	queue   []*extprocsvc.ProcessingRequest
	closing bool
	wake    chan struct{}

	closed bool // loop-side: close was requested; later events are ignored
}

// openProcStream starts the Process RPC with the filter's initial metadata.
func openProcStream(s *requestStream, f *extProcFilter, conn *grpc.ClientConn, md [][2]string) (*procStream, error) {
	ctx, cancel := context.WithCancel(s.h.ctx)
	pairs := make([]string, 0, 2*len(md))
	for _, kv := range md {
		pairs = append(pairs, kv[0], kv[1])
	}
	ctx = metadata.AppendToOutgoingContext(ctx, pairs...)
	cli, err := extprocsvc.NewExternalProcessorClient(conn).Process(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	ps := &procStream{s: s, f: f, cancel: cancel, cli: cli, wake: make(chan struct{}, 1)}
	s.h.count(func(st *Stats) { st.ExtProcStreams++ })
	s.wg.Add(2)
	go ps.sendLoop()
	go ps.recvLoop()
	return ps, nil
}

// send queues a message; it never blocks.
func (ps *procStream) send(m *extprocsvc.ProcessingRequest) {
	ps.mu.Lock()
	ps.queue = append(ps.queue, m)
	ps.mu.Unlock()
	ps.signal()
}

// close ends the stream the way Envoy does: half-close, then reset (cancel).
// A Go server therefore usually sees codes.Canceled.
func (ps *procStream) close() {
	if ps.closed {
		return
	}
	ps.closed = true
	ps.mu.Lock()
	ps.closing = true
	ps.mu.Unlock()
	ps.signal()
}

func (ps *procStream) signal() {
	select {
	case ps.wake <- struct{}{}:
	default:
	}
}

func (ps *procStream) sendLoop() {
	defer ps.s.wg.Done()
	defer ps.cancel()
	failed := false
	for {
		ps.mu.Lock()
		q, closing := ps.queue, ps.closing
		ps.queue = nil
		ps.mu.Unlock()
		for _, m := range q {
			if failed {
				break
			}
			if err := ps.cli.Send(m); err != nil {
				// The error itself is reported by Recv.
				failed = true
			}
			ps.s.h.count(func(st *Stats) { st.ExtProcMessages++ })
		}
		if closing {
			_ = ps.cli.CloseSend()
			return // the deferred cancel resets the stream
		}
		select {
		case <-ps.wake:
		case <-ps.s.h.ctx.Done():
			return
		}
	}
}

func (ps *procStream) recvLoop() {
	defer ps.s.wg.Done()
	for {
		resp, err := ps.cli.Recv()
		if err != nil {
			ps.s.post(func() { ps.f.onStreamEnd(ps, err) })
			return
		}
		if !ps.s.post(func() { ps.f.onReply(ps, resp) }) {
			return
		}
	}
}
