package bench

import (
	"syscall"
	"time"
)

// sleepUntil blocks the calling thread until t with nanosleep(2). The Go
// runtime's timers wake up to a millisecond late when the process is otherwise
// idle (the network poller waits in whole milliseconds), which on a small VM made
// requests start 0.5 ms late at the median; nanosleep is good to about 0.1 ms.
// The caller should hold its thread (runtime.LockOSThread).
func sleepUntil(t time.Time) {
	for {
		d := time.Until(t)
		if d <= 0 {
			return
		}
		ts := syscall.NsecToTimespec(int64(d))
		if err := syscall.Nanosleep(&ts, nil); err != nil && err != syscall.EINTR {
			time.Sleep(time.Until(t))
			return
		}
	}
}
