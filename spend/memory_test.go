package spend_test

import (
	"context"
	"testing"

	"github.com/tollgate-dev/tollgate/records"
	"github.com/tollgate-dev/tollgate/spend"
	"github.com/tollgate-dev/tollgate/spend/spendtest"
)

func TestMemoryContract(t *testing.T) {
	spendtest.Run(t, func(t *testing.T, recs []records.Record) spend.Store {
		m := spend.NewMemory(len(recs))
		// Twice, as a replayed spool would: each record counts once.
		for range 2 {
			if err := m.Write(context.Background(), recs); err != nil {
				t.Fatal(err)
			}
		}
		return m
	})
}

func TestMemoryIsBounded(t *testing.T) {
	recs := spendtest.Records()
	m := spend.NewMemory(1000)
	if err := m.Write(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	// The ring keeps the last 1,000 records written.
	q := spend.Query{From: spendtest.End.AddDate(-1, 0, 0), To: spendtest.End}
	got, err := m.Aggregate(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	want := spendtest.Aggregate(recs[len(recs)-1000:], q)
	if len(got) != 1 || got[0].Requests != 1000 || got[0].Metrics != want[0].Metrics {
		t.Errorf("after 3,000 records into 1,000 places: %+v, want %+v", got, want)
	}
}

// BenchmarkMemory100k times each spend query of the acceptance over the
// 100,000 records in the memory store (README "Spend API" has the figures).
func BenchmarkMemory100k(b *testing.B) {
	m := spend.NewMemory(spend.DefaultMemoryRecords)
	if err := m.Write(context.Background(), spendtest.Records100k()); err != nil {
		b.Fatal(err)
	}
	spendtest.BenchmarkAPI(b, spendtest.API100k(m))
}
