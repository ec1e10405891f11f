package records

import (
	"context"
	"crypto/sha256"
	"net/http"
	"testing"

	"github.com/tollgate-dev/tollgate/internal/adminapi"
)

// viewerHandler serves a store holding records of teams platform and
// research, for the admin token and a viewer of platform.
func viewerHandler(t *testing.T) http.Handler {
	t.Helper()
	m := NewMemoryStore(100)
	recs := testRecords(3, "trace-p", "key-1") // team platform
	for i := range 2 {
		r := testRecord(10+i, "trace-r", "key-9")
		r.Team = "research"
		recs = append(recs, r)
	}
	mixed := testRecord(20, "trace-mixed", "key-1")
	other := testRecord(21, "trace-mixed", "key-9")
	other.Team = "research"
	recs = append(recs, mixed, other)
	if err := m.Write(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	tokens := adminapi.NewTokens(testToken, []adminapi.Viewer{
		{Name: "lead-alice", Team: "platform", SHA256: sha256.Sum256([]byte("viewer-platform"))},
	})
	return NewScopedAPIHandler(m, func() *adminapi.Tokens { return tokens })
}

func TestViewerSeesOnlyItsTeam(t *testing.T) {
	h := viewerHandler(t)
	const viewer = "Bearer viewer-platform"

	var body recordsBody
	if resp := get(t, h, "/v1/records", viewer, &body); resp.StatusCode != 200 {
		t.Fatalf("viewer: %d", resp.StatusCode)
	}
	if len(body.Records) != 4 {
		t.Errorf("viewer got %d records, want platform's 4", len(body.Records))
	}
	for _, r := range body.Records {
		if r.Team != "platform" {
			t.Errorf("viewer got a record of team %q", r.Team)
		}
	}
	if resp := get(t, h, "/v1/records?team=platform", viewer, &body); resp.StatusCode != 200 || len(body.Records) != 4 {
		t.Errorf("viewer asking for its own team: %d, %d records", resp.StatusCode, len(body.Records))
	}
	// Another team is refused, never answered empty.
	for _, target := range []string{"/v1/records?team=research", "/v1/records?team=research&key=key-9", "/v1/traces/trace-r"} {
		var e apiErrorBody
		if resp := get(t, h, target, viewer, &e); resp.StatusCode != http.StatusForbidden || e.Error.Type != "permission_error" {
			t.Errorf("viewer GET %s: %d %+v, want 403 permission_error", target, resp.StatusCode, e)
		}
	}
	// A key of another team, asked without a team, is filtered to nothing of it.
	if get(t, h, "/v1/records?key=key-9", viewer, &body); len(body.Records) != 0 {
		t.Errorf("viewer read %d records of another team's key", len(body.Records))
	}
	// A trace shared by two teams shows the viewer its team's part only.
	var tr Trace
	if resp := get(t, h, "/v1/traces/trace-mixed", viewer, &tr); resp.StatusCode != 200 || tr.Totals.Requests != 1 || tr.Requests[0].Team != "platform" {
		t.Errorf("viewer's mixed trace: %d %+v", resp.StatusCode, tr.Totals)
	}
	// The admin token sees every team and filters by any.
	if get(t, h, "/v1/records", "", &body); len(body.Records) != 7 {
		t.Errorf("admin got %d records, want 7", len(body.Records))
	}
	if get(t, h, "/v1/records?team=research", "", &body); len(body.Records) != 3 {
		t.Errorf("admin filtered by research: %d records, want 3", len(body.Records))
	}
	if get(t, h, "/v1/traces/trace-mixed", "", &tr); tr.Totals.Requests != 2 {
		t.Errorf("admin's mixed trace: %+v", tr.Totals)
	}
	// An unknown token is still 401.
	var e apiErrorBody
	if resp := get(t, h, "/v1/records", "Bearer viewer-other", &e); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unknown token: %d", resp.StatusCode)
	}
}

func TestRecordsFilterBySession(t *testing.T) {
	m := NewMemoryStore(10)
	a, b := testRecord(1, "t", "k"), testRecord(2, "t", "k")
	a.SessionID = "sess-1"
	if err := m.Write(context.Background(), []Record{a, b}); err != nil {
		t.Fatal(err)
	}
	var body recordsBody
	get(t, NewAPIHandler(m, testToken), "/v1/records?session=sess-1", "", &body)
	if len(body.Records) != 1 || body.Records[0].ID != a.ID {
		t.Errorf("session filter: %+v", body.Records)
	}
}
