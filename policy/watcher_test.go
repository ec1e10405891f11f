package policy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// policyWithKey returns a valid policy whose only key has the given id and
// whose provider reads its key from the file secret.
func policyWithKey(id string) []byte {
	return doc(
		"version: 1",
		"providers: {a: {type: anthropic, api_key_file: secret}}",
		"routes: {r: {chain: [a]}}",
		"keys: [{id: "+id+", sha256: "+hashK+"}]",
	)
}

// reloads records the calls of a Watcher's onReload.
type reloads struct {
	mu    sync.Mutex
	calls []string // "ok <key id>" or "error"
	errs  []error
}

func (r *reloads) onReload(p *Policy, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case err != nil && p == nil:
		r.calls = append(r.calls, "error")
		r.errs = append(r.errs, err)
	case err == nil && p != nil:
		r.calls = append(r.calls, "ok "+p.Keys[0].ID)
	default:
		r.calls = append(r.calls, "bad call")
	}
}

func (r *reloads) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	// Write and rename, as editors and Kubernetes do, so a reader never sees
	// a half-written file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func currentID(w *Watcher) string { return w.Current().Keys[0].ID }

func TestWatcherReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	write(t, path, policyWithKey("first"))
	write(t, filepath.Join(dir, "secret"), []byte("key-1\n"))

	var r reloads
	w, err := NewWatcher(path, LoadOptions{RequireSecrets: true}, time.Hour, r.onReload)
	if err != nil {
		t.Fatalf("NewWatcher: %v", err)
	}
	type step struct {
		name      string
		change    func()
		wantErr   bool
		wantID    string
		wantKey   string
		wantCalls []string
	}
	steps := []step{
		{
			name:   "unchanged: no reload",
			change: func() {},
			wantID: "first", wantKey: "key-1",
		},
		{
			name:   "rewritten with the same content: no reload",
			change: func() { write(t, path, policyWithKey("first")) },
			wantID: "first", wantKey: "key-1",
		},
		{
			name:   "changed: swapped",
			change: func() { write(t, path, policyWithKey("second")) },
			wantID: "second", wantKey: "key-1",
			wantCalls: []string{"ok second"},
		},
		{
			name:    "broken: the last good policy stays",
			change:  func() { write(t, path, []byte("version: 1\nproviders: {a: {typo: 1}}\n")) },
			wantErr: true,
			wantID:  "second", wantKey: "key-1",
			wantCalls: []string{"ok second", "error"},
		},
		{
			name:    "still broken: the error again, but no new callback",
			change:  func() {},
			wantErr: true,
			wantID:  "second", wantKey: "key-1",
			wantCalls: []string{"ok second", "error"},
		},
		{
			name:   "reverted: swapped again",
			change: func() { write(t, path, policyWithKey("second")) },
			wantID: "second", wantKey: "key-1",
			wantCalls: []string{"ok second", "error", "ok second"},
		},
		{
			name:   "key file rotated: swapped",
			change: func() { write(t, filepath.Join(dir, "secret"), []byte("key-2\n")) },
			wantID: "second", wantKey: "key-2",
			wantCalls: []string{"ok second", "error", "ok second", "ok second"},
		},
		{
			name: "key file removed: an error, the last good policy stays",
			change: func() {
				if err := os.Remove(filepath.Join(dir, "secret")); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: true,
			wantID:  "second", wantKey: "key-2",
			wantCalls: []string{"ok second", "error", "ok second", "ok second", "error"},
		},
		{
			name:   "key file back: swapped",
			change: func() { write(t, filepath.Join(dir, "secret"), []byte("key-3")) },
			wantID: "second", wantKey: "key-3",
			wantCalls: []string{"ok second", "error", "ok second", "ok second", "error", "ok second"},
		},
		{
			name: "policy file removed: an error, the last good policy stays",
			change: func() {
				if err := os.Remove(path); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: true,
			wantID:  "second", wantKey: "key-3",
			wantCalls: []string{"ok second", "error", "ok second", "ok second", "error", "ok second", "error"},
		},
		{
			name:   "policy file back: swapped",
			change: func() { write(t, path, policyWithKey("third")) },
			wantID: "third", wantKey: "key-3",
			wantCalls: []string{"ok second", "error", "ok second", "ok second", "error", "ok second", "error", "ok third"},
		},
	}
	for _, s := range steps {
		s.change()
		err := w.Reload()
		if (err != nil) != s.wantErr {
			t.Errorf("%s: Reload() = %v, want error %v", s.name, err, s.wantErr)
		}
		if got := currentID(w); got != s.wantID {
			t.Errorf("%s: current key id %q, want %q", s.name, got, s.wantID)
		}
		if got := apiKey(w.Current().Providers["a"]); got != s.wantKey {
			t.Errorf("%s: current provider key %q, want %q", s.name, got, s.wantKey)
		}
		if got := r.get(); strings.Join(got, ",") != strings.Join(s.wantCalls, ",") {
			t.Errorf("%s: onReload calls %q, want %q", s.name, got, s.wantCalls)
		}
	}

	// The error passed to onReload for a broken file locates the problem.
	var le *LoadError
	if len(r.errs) == 0 || !errors.As(r.errs[0], &le) || !strings.Contains(le.Error(), path+`:2:17: providers.a: unknown field "typo"`) {
		t.Errorf("first reload error = %v, want a *LoadError with the problem at %s:2:17", r.errs, path)
	}
}

// TestWatcherSymlinkSwap follows the Kubernetes ConfigMap layout: the watched
// path is a symlink into a directory that is replaced by swapping a symlink.
func TestWatcherSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	for _, v := range []string{"v1", "v2"} {
		if err := os.Mkdir(filepath.Join(dir, v), 0o700); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(dir, v, "policy.yaml"), policyWithKey(v))
		write(t, filepath.Join(dir, v, "secret"), []byte("key-"+v))
	}
	link := func(target string) {
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(target, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	link("v1")
	path := filepath.Join(dir, "policy.yaml")
	if err := os.Symlink(filepath.Join("..data", "policy.yaml"), path); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..data", "secret"), filepath.Join(dir, "secret")); err != nil {
		t.Fatal(err)
	}

	var r reloads
	w, err := NewWatcher(path, LoadOptions{}, 0, r.onReload)
	if err != nil {
		t.Fatalf("NewWatcher: %v", err)
	}
	link("v2")
	if err := w.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if got, key := currentID(w), apiKey(w.Current().Providers["a"]); got != "v2" || key != "key-v2" {
		t.Errorf("after the swap: key id %q with provider key %q, want v2 with key-v2", got, key)
	}
}

func TestWatcherFirstLoadFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if _, err := NewWatcher(path, LoadOptions{}, 0, nil); err == nil {
		t.Error("NewWatcher on a missing file succeeded")
	}
	write(t, path, []byte("version: 2\n"))
	if _, err := NewWatcher(path, LoadOptions{}, 0, nil); err == nil {
		t.Error("NewWatcher on an invalid file succeeded")
	}
}

func TestWatcherDefault(t *testing.T) {
	w, err := NewWatcher("", LoadOptions{}, 0, func(*Policy, error) { t.Error("onReload called") })
	if err != nil {
		t.Fatalf("NewWatcher: %v", err)
	}
	if w.Current().Source != DefaultSource {
		t.Errorf("Source = %q, want %q", w.Current().Source, DefaultSource)
	}
	if err := w.Reload(); err != nil {
		t.Errorf("Reload() = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	cancel()
	<-done
}

// TestWatcherRun checks that Run notices a change by itself. It waits for the
// callback, bounded only as a guard against a hang.
func TestWatcherRun(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	write(t, path, policyWithKey("first"))
	write(t, filepath.Join(dir, "secret"), []byte("key"))

	swapped := make(chan string, 10)
	w, err := NewWatcher(path, LoadOptions{}, time.Millisecond, func(p *Policy, err error) {
		if err != nil {
			t.Errorf("onReload error: %v", err)
			return
		}
		swapped <- p.Keys[0].ID
	})
	if err != nil {
		t.Fatalf("NewWatcher: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	write(t, path, policyWithKey("second"))
	select {
	case id := <-swapped:
		if id != "second" || currentID(w) != "second" {
			t.Errorf("swapped to %q, current %q; want second", id, currentID(w))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not reload the changed file")
	}
}

// TestWatcherConcurrent reads the snapshot while reloads swap it, for the race
// detector.
func TestWatcherConcurrent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	write(t, path, policyWithKey("v0"))
	write(t, filepath.Join(dir, "secret"), []byte("key"))
	w, err := NewWatcher(path, LoadOptions{}, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, ok := w.Current().Authenticate("k"); !ok {
					t.Error("a snapshot did not authenticate k")
					return
				}
			}
		})
	}
	for i := range 20 {
		write(t, path, policyWithKey("v"+string(rune('a'+i))))
		wg.Go(func() { _ = w.Reload() })
	}
	close(stop)
	wg.Wait()
}
