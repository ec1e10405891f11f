package spend

import (
	"github.com/tollgate-dev/tollgate/internal/adminapi"
	"github.com/tollgate-dev/tollgate/policy/budget"
)

// BudgetVisible returns whether principal p may read the budgets of a
// scope: the admin every scope; a team's viewer its team's, and those of
// its team's keys (keyTeam gives a key id's team; nil knows none). It is
// the rule of GET /v1/spend/budgets, for the dashboard's Budgets page.
func BudgetVisible(p adminapi.Principal, keyTeam func(keyID string) string) func(budget.Scope) bool {
	return func(s budget.Scope) bool {
		if p.Admin() {
			return true
		}
		switch s.Kind {
		case budget.ScopeTeam:
			return s.Name == p.Team
		case budget.ScopeKey:
			return keyTeam != nil && keyTeam(s.Name) == p.Team
		}
		return false
	}
}
