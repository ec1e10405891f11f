package extproc

import (
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// manualTimers records the timers a duplexBody starts; fire runs the last.
type manualTimers struct{ fs []func() }

type manualTimer struct{}

func (manualTimer) Stop() bool { return true }

func (m *manualTimers) afterFunc(_ time.Duration, f func()) Timer {
	m.fs = append(m.fs, f)
	return manualTimer{}
}

func (m *manualTimers) fire() { m.fs[len(m.fs)-1]() }

func sentBodies(rs []*extprocv3.ProcessingResponse) []string {
	var out []string
	for _, r := range rs {
		sr := r.GetResponseBody().GetResponse().GetBodyMutation().GetStreamedResponse()
		s := string(sr.GetBody())
		if sr.GetEndOfStream() {
			s += "|eos"
		}
		out = append(out, s)
	}
	return out
}

// A ping goes out only between whole events, after an interval in which the
// provider sent nothing, stops after the maximum idle time, and never after
// the end of the stream.
func TestDuplexBodyPings(t *testing.T) {
	var sent []*extprocv3.ProcessingResponse
	send := func(r *extprocv3.ProcessingResponse) error { sent = append(sent, r); return nil }
	timers := &manualTimers{}
	d := newDuplexBody(send, timers.afterFunc, 10*time.Second, 25*time.Second, []byte("P\n\n"), nil)

	if err := d.chunk([]byte("event: a\ndata: {}\n\nevent: b\nda"), false); err != nil {
		t.Fatal(err)
	}
	timers.fire() // mid-event: no ping
	if err := d.chunk([]byte("ta: {}\n\n"), false); err != nil {
		t.Fatal(err)
	}
	timers.fire() // ping 1
	timers.fire() // ping 2
	n := len(timers.fs)
	if d.timer != nil || n != 4 {
		t.Errorf("after 25 s of silence: timer %v, %d timers started; want no more pings", d.timer, n)
	}
	if err := d.chunk(nil, true); err != nil {
		t.Fatal(err)
	}
	timers.fs[len(timers.fs)-1]() // a timer that fires late is ignored
	want := []string{"event: a\ndata: {}\n\nevent: b\nda", "ta: {}\n\n", "P\n\n", "P\n\n", "|eos"}
	got := sentBodies(sent)
	if len(got) != len(want) {
		t.Fatalf("sent %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("sent %q, want %q", got, want)
			break
		}
	}
}

// BenchmarkAdapterResponseChunk is the adapter's own work per response
// chunk of a translated stream, translation aside: in STREAMED mode (the
// reply built and returned) and in FULL_DUPLEX_STREAMED mode with pings (the
// reply built and sent under the lock, the ping timer stopped and started
// again, real time.AfterFunc).
func BenchmarkAdapterResponseChunk(b *testing.B) {
	chunk := []byte("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n")
	b.Run("streamed", func(b *testing.B) {
		a := &adapterProcessor{respBody: func(c []byte, _ bool) []byte { return c }}
		body := &extprocv3.HttpBody{Body: chunk}
		b.ReportAllocs()
		for b.Loop() {
			if r, err := a.responseBody(body); err != nil || r == nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("full_duplex", func(b *testing.B) {
		send := func(*extprocv3.ProcessingResponse) error { return nil }
		d := newDuplexBody(send, realAfterFunc, DefaultPingInterval, DefaultPingMaxIdle, pingAnthropic, nil)
		defer d.end()
		a := &adapterProcessor{respBody: func(c []byte, _ bool) []byte { return c }, duplex: true, body: d}
		body := &extprocv3.HttpBody{Body: chunk}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := a.responseBody(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}
