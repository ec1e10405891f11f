package records

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWriterFullDisk pins what a full disk costs: while a sink is down and
// its spool cannot be written (ENOSPC, from /dev/full), that sink's records
// are counted as dropped and logged, the healthy sinks get every record, and
// Emit never blocks; once the sink is back it gets new records directly.
func TestWriterFullDisk(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full on this system")
	}
	dir := t.TempDir()
	// The spool file of sink "down" is a disk that is always full.
	if err := os.Symlink("/dev/full", filepath.Join(dir, "down.spool")); err != nil {
		t.Fatal(err)
	}
	down, up := newFakeSink("down"), newFakeSink("up")
	down.setFailing(true)
	w, reg := newTestWriter(t, WriterOptions{Sinks: []Sink{down, up}, SpoolDir: dir, BatchSize: 4})

	want := testRecords(10, "trace-full", "key-full")
	for _, r := range want {
		w.Emit(r)
	}
	eventually(t, "the healthy sink to get all 10 records and the full spool to drop 10", func() bool {
		return up.count() == 10 && metricValue(t, reg, "tollgate_records_dropped_total", "down") == 10
	})
	if n := metricValue(t, reg, "tollgate_records_spooled_total", "down"); n != 0 {
		t.Errorf("spooled = %v on a full disk, want 0", n)
	}

	down.setFailing(false)
	more := testRecords(15, "trace-full", "key-full")[10:]
	eventually(t, "the recovered sink to get new records directly", func() bool { return !w.spools[0].isFailing() })
	for _, r := range more {
		w.Emit(r)
	}
	eventually(t, "5 direct writes after recovery", func() bool { return down.count() == 5 })
	if n := metricValue(t, reg, "tollgate_records_dropped_total", "down"); n != 10 {
		t.Errorf("dropped = %v after recovery, want still 10", n)
	}
	// /dev/full refuses fsync (EINVAL), which a real full disk does not, so
	// Close's error says nothing here.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = w.Close(ctx)
}
