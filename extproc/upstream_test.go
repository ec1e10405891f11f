package extproc

import (
	"testing"

	"github.com/tollgate-dev/tollgate/policy"
)

// TestProviderTypesAreUpstreams checks that the settings of every registered
// provider type can be sent requests: a policy that loads never names a
// provider the adapter cannot serve.
func TestProviderTypesAreUpstreams(t *testing.T) {
	for _, pt := range policy.ProviderTypes() {
		if _, ok := pt.NewSettings().(Upstream); !ok {
			t.Errorf("provider type %s: settings %T do not implement Upstream", pt.Name(), pt.NewSettings())
		}
	}
}
