package spend_test

import (
	"testing"

	"github.com/tollgate-dev/tollgate/internal/adminapi"
	"github.com/tollgate-dev/tollgate/policy/budget"
	"github.com/tollgate-dev/tollgate/spend"
)

func TestBudgetVisible(t *testing.T) {
	keyTeam := func(k string) string { return map[string]string{"k-alice": "platform", "k-bob": "research"}[k] }
	admin, viewer := adminapi.Principal{Name: "admin"}, adminapi.Principal{Name: "lead", Team: "platform"}
	for _, tt := range []struct {
		p       adminapi.Principal
		keyTeam func(string) string
		scope   budget.Scope
		want    bool
	}{
		{admin, nil, budget.Global, true},
		{admin, nil, budget.Scope{Kind: budget.ScopeUser, Name: "alice"}, true},
		{viewer, keyTeam, budget.Scope{Kind: budget.ScopeTeam, Name: "platform"}, true},
		{viewer, keyTeam, budget.Scope{Kind: budget.ScopeTeam, Name: "research"}, false},
		{viewer, keyTeam, budget.Scope{Kind: budget.ScopeKey, Name: "k-alice"}, true},
		{viewer, keyTeam, budget.Scope{Kind: budget.ScopeKey, Name: "k-bob"}, false},
		{viewer, nil, budget.Scope{Kind: budget.ScopeKey, Name: "k-alice"}, false},
		{viewer, keyTeam, budget.Scope{Kind: budget.ScopeUser, Name: "alice"}, false},
		{viewer, keyTeam, budget.Global, false},
	} {
		if got := spend.BudgetVisible(tt.p, tt.keyTeam)(tt.scope); got != tt.want {
			t.Errorf("%s sees %s: %v, want %v", tt.p.Name, tt.scope, got, tt.want)
		}
	}
}
