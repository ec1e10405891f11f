package recordgen

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/records"
)

func TestGenerate(t *testing.T) {
	end := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	o := Options{Seed: 7, Records: 20_000, End: end, Days: 30, Users: 200, Teams: 10}
	recs := Generate(o)
	if len(recs) != o.Records {
		t.Fatalf("%d records, want %d", len(recs), o.Records)
	}
	if diff := cmp.Diff(recs[:50], Generate(o)[:50]); diff != "" {
		t.Errorf("not deterministic (-first +second):\n%s", diff)
	}
	ids := map[string]bool{}
	teams, users, models, sessions, agents := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}, 0
	outcomes := map[records.Outcome]int{}
	var weekend int
	for _, r := range recs {
		if ids[r.ID] {
			t.Fatalf("duplicate id %s", r.ID)
		}
		ids[r.ID] = true
		if r.Start.Before(end.AddDate(0, 0, -30)) || !r.Start.Before(end) {
			t.Fatalf("record %s starts at %v, outside the 30 days", r.ID, r.Start)
		}
		if r.Cost == "" || r.Outcome == records.OutcomeOK && r.CacheStatus != "HIT" && r.CostPicoUSD <= 0 {
			t.Fatalf("record %s is not priced: %+v", r.ID, r)
		}
		teams[r.Team], users[r.User], models[r.Model] = true, true, true
		if r.SessionID != "" {
			sessions[r.SessionID] = true
		}
		if r.AgentID != "" {
			agents++
		}
		outcomes[r.Outcome]++
		if wd := r.Start.Weekday(); wd == time.Saturday || wd == time.Sunday {
			weekend++
		}
	}
	if len(teams) != 10 || len(users) != 200 || len(models) != 3 {
		t.Errorf("%d teams, %d users, %d models; want 10, 200, 3", len(teams), len(users), len(models))
	}
	if len(sessions) < 100 || agents < len(recs)/20 {
		t.Errorf("%d sessions and %d subagent requests: too few", len(sessions), agents)
	}
	if outcomes[records.OutcomeOK] < len(recs)*9/10 || outcomes[records.OutcomeProviderError] == 0 || outcomes[records.OutcomeDenied] == 0 {
		t.Errorf("outcomes %v", outcomes)
	}
	if weekend > len(recs)/5 {
		t.Errorf("%d of %d records at weekends: want quieter weekends", weekend, len(recs))
	}
}
