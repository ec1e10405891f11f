package gateway

import (
	"sync"

	"github.com/tollgate-dev/tollgate/internal/adminapi"
	"github.com/tollgate-dev/tollgate/policy"
)

// adminTokens are the tokens of the admin port: the admin token, and the
// viewer tokens of the current policy (teams.<team>.viewers), rebuilt when
// the policy is reloaded.
type adminTokens struct {
	admin   string
	current func() *policy.Policy

	mu     sync.Mutex
	of     *policy.Policy // the policy tokens was built from
	tokens *adminapi.Tokens
}

// get returns the tokens of the current policy.
func (a *adminTokens) get() *adminapi.Tokens {
	p := a.current()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tokens == nil || p != a.of {
		var viewers []adminapi.Viewer
		if p != nil {
			for _, v := range p.Viewers {
				viewers = append(viewers, adminapi.Viewer{Name: v.Name, Team: v.Team, SHA256: v.SHA256})
			}
		}
		a.of, a.tokens = p, adminapi.NewTokens(a.admin, viewers)
	}
	return a.tokens
}

// keyTeam returns the team of the current policy's key id, or "".
func keyTeam(current func() *policy.Policy) func(string) string {
	return func(id string) string {
		for _, k := range current().Keys {
			if k.ID == id {
				return k.Team
			}
		}
		return ""
	}
}
