package envoytest

import "sync"

// handlerGroup counts in-flight HTTP handlers so a server's Close can wait
// for them. Unlike a bare sync.WaitGroup, enter may race with wait: once
// wait has begun, late handlers are refused.
type handlerGroup struct {
	mu     sync.Mutex
	cond   *sync.Cond
	n      int
	closed bool
}

// enter registers a handler; it reports false once wait has been called.
func (g *handlerGroup) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.n++
	return true
}

func (g *handlerGroup) exit() {
	g.mu.Lock()
	g.n--
	if g.cond != nil {
		g.cond.Broadcast()
	}
	g.mu.Unlock()
}

// wait refuses new handlers and waits for the running ones.
func (g *handlerGroup) wait() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	if g.cond == nil {
		g.cond = sync.NewCond(&g.mu)
	}
	for g.n > 0 {
		g.cond.Wait()
	}
}
