package policy

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultWatchInterval is how often a Watcher polls when given no interval.
const DefaultWatchInterval = 2 * time.Second

// Watcher holds the current policy snapshot and reloads it when its inputs
// change. It polls rather than subscribing to file events: it hashes the
// policy file's content together with the content of every api_key_file the
// policy read, so a Kubernetes ConfigMap or Secret symlink swap, an editor that
// writes by rename and a rotated key file are all noticed.
//
// A change that fails to load keeps the last good snapshot. Current is safe
// for concurrent use; Reload calls are serialised.
type Watcher struct {
	path     string
	opts     LoadOptions
	interval time.Duration
	onReload func(*Policy, error)

	current atomic.Pointer[Policy]

	mu      sync.Mutex        // Serialises Reload and guards the fields below.
	sum     [sha256.Size]byte // Fingerprint of the inputs of the last load.
	files   []string          // Secret files read by the last load, in order.
	lastErr error             // Error of the last load, nil if it succeeded.
}

// input is one file read while loading, or the error reading it.
type input struct {
	name string
	data []byte
	err  error
}

// NewWatcher loads the policy at path and returns a Watcher holding it; it
// fails if that first load fails. An empty path selects the embedded default
// policy, which is never reloaded.
//
// onReload, which may be nil, is called after each later load caused by a
// change: with the new policy and a nil error when it was swapped in, or with
// a nil policy and the error when the last good policy was kept. It is not
// called for the first load, nor again while the inputs stay the same. It is
// called with the Watcher's lock held and must not call Reload. interval is
// the polling period of Run; zero or less means DefaultWatchInterval.
func NewWatcher(path string, opts LoadOptions, interval time.Duration, onReload func(p *Policy, err error)) (*Watcher, error) {
	opts = opts.withDefaults()
	if interval <= 0 {
		interval = DefaultWatchInterval
	}
	if onReload == nil {
		onReload = func(*Policy, error) {}
	}
	w := &Watcher{path: path, opts: opts, interval: interval, onReload: onReload}
	if path == "" {
		p, err := Default(opts)
		if err != nil {
			return nil, err
		}
		w.current.Store(p)
		return w, nil
	}
	p, ins, err := w.load()
	if err != nil {
		return nil, err
	}
	w.remember(ins)
	w.current.Store(p)
	return w, nil
}

// Current returns the current snapshot. It is never nil.
func (w *Watcher) Current() *Policy {
	return w.current.Load()
}

// Run polls for changes every interval until ctx is done. Without a policy
// file there is nothing to poll, and Run only waits for ctx.
func (w *Watcher) Run(ctx context.Context) {
	if w.path == "" {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = w.Reload() // Reported through onReload.
		}
	}
}

// Reload checks the inputs now and loads the policy if they changed since the
// last load. It returns the error of the load that produced the current state:
// nil when the latest inputs loaded, or the error for which the last good
// snapshot is being kept. Callers use it on SIGHUP; Run calls it on each tick.
func (w *Watcher) Reload() error {
	if w.path == "" {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()

	ins := []input{w.read(w.path)}
	if ins[0].err == nil {
		for _, f := range w.files {
			ins = append(ins, w.read(f))
		}
	}
	if fingerprint(ins) == w.sum {
		return w.lastErr
	}

	p, ins, err := w.load()
	w.remember(ins)
	w.lastErr = err
	if err != nil {
		w.onReload(nil, err)
		return err
	}
	w.current.Store(p)
	w.onReload(p, nil)
	return nil
}

// load loads the policy file, recording every file it reads.
func (w *Watcher) load() (*Policy, []input, error) {
	var ins []input
	opts := w.opts
	opts.ReadFile = func(name string) ([]byte, error) {
		in := w.read(name)
		ins = append(ins, in)
		return in.data, in.err
	}
	p, err := LoadFile(w.path, opts)
	return p, ins, err
}

func (w *Watcher) read(name string) input {
	data, err := w.opts.ReadFile(name)
	return input{name: name, data: data, err: err}
}

// remember stores the fingerprint of the inputs of a load and the secret
// files to check next time. The first input is the policy file itself.
func (w *Watcher) remember(ins []input) {
	w.sum = fingerprint(ins)
	w.files = w.files[:0]
	for _, in := range ins[1:] {
		w.files = append(w.files, in.name)
	}
}

// fingerprint hashes the names and contents (or read errors) of ins.
func fingerprint(ins []input) [sha256.Size]byte {
	h := sha256.New()
	field := func(b []byte) {
		_ = binary.Write(h, binary.BigEndian, uint64(len(b)))
		h.Write(b)
	}
	for _, in := range ins {
		field([]byte(in.name))
		if in.err != nil {
			h.Write([]byte{1})
			field([]byte(in.err.Error()))
			continue
		}
		h.Write([]byte{0})
		field(in.data)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}
