package extproc

import (
	"slices"
	"testing"
)

// The client's anthropic-beta travels in the decision: a value, none (null),
// or, from a replica that did not write it, nothing (unknown).
func TestDecisionCarriesBetas(t *testing.T) {
	for _, d := range []Decision{
		{Route: "r", Path: "/p", Betas: "a-2025-01-01,b-2025-01-01", HasBetas: true, betasKnown: true},
		{Route: "r", Path: "/p", betasKnown: true},
		{Route: "r", Path: "/p"},
	} {
		got, err := decisionFrom(withDecision(reqHeaders(false), d))
		if err != nil {
			t.Fatal(err)
		}
		if got != d {
			t.Errorf("decision %+v came back as %+v", d, got)
		}
	}
}

// Every attempt's adapter sets anthropic-beta back to the client's value
// from the decision (an earlier attempt to Vertex AI left its own in the
// shared header map), or removes it when the client sent none; an attempt
// whose header map already holds the client's value leaves it.
func TestAdapterRestoresClientBetas(t *testing.T) {
	for _, c := range []struct {
		name    string
		inMap   []string // the anthropic-beta header in the map, if any
		d       Decision
		set     string
		removed bool
	}{
		{"restored", []string{"anthropic-beta", "filtered-2025-01-01"}, Decision{Betas: "client-2025-01-01,x-2025-02-02", HasBetas: true, betasKnown: true}, "client-2025-01-01,x-2025-02-02", false},
		{"removed", []string{"anthropic-beta", "filtered-2025-01-01"}, Decision{betasKnown: true}, "", true},
		{"kept", []string{"anthropic-beta", "client-2025-01-01"}, Decision{Betas: "client-2025-01-01", HasBetas: true, betasKnown: true}, "", false},
		{"unknown", []string{"anthropic-beta", "filtered-2025-01-01"}, Decision{}, "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newTestServer(t)
			st := stream(t, s, roleAdapter)
			req := reqHeaders(false, append([]string{":method", "POST", ":path", "/v1/messages", "x-request-id", "rid-1"}, c.inMap...)...)
			req.Attributes = adapterAttrs("other", 2)
			d := c.d
			d.Route, d.Path, d.KeyID, d.RecordID = "other", "/v1/messages", "alice", "rec-1"
			withDecision(req, d)
			hm := roundTrip(t, st, req).GetRequestHeaders().GetResponse().GetHeaderMutation()
			v, set := sets(t, hm)["anthropic-beta"]
			if v != c.set || set != (c.set != "") {
				t.Errorf("anthropic-beta set to %q (%v), want %q", v, set, c.set)
			}
			if got := slices.Contains(hm.GetRemoveHeaders(), "anthropic-beta"); got != c.removed {
				t.Errorf("anthropic-beta removed %v, want %v", got, c.removed)
			}
		})
	}
}
