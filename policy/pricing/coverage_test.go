package pricing

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/policy/pricing/internal/decimal"
	"github.com/tollgate-dev/tollgate/policy/pricing/internal/modelid"
)

// liteLLMSource is the table the catalog was generated from. Tests read it
// when it is checked out next to the repository; the binary never does.
const liteLLMSource = "../../../shared/data/pricing/litellm-model-prices.json"

// TestLiteLLMCoverage finds every text-generation model of the LiteLLM table
// that is priced per token (mode chat, responses or completion, or no mode)
// through Lookup, and checks that the catalog's input and output rates are
// the table's, converted exactly, unless the report says otherwise.
func TestLiteLLMCoverage(t *testing.T) {
	data, err := os.ReadFile(liteLLMSource)
	if err != nil {
		t.Skipf("the LiteLLM table is not here (%v)", err)
	}
	var table map[string]map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&table); err != nil {
		t.Fatal(err)
	}
	c := Embedded()
	keys := map[[2]string]int{}
	type row struct {
		provider, name string
		v              map[string]any
	}
	var rows []row
	var chat int
	for name, v := range table {
		mode, _ := v["mode"].(string)
		if name == "sample_spec" || (mode != "chat" && mode != "responses" && mode != "completion" && mode != "") {
			continue
		}
		_, in := v["input_cost_per_token"].(json.Number)
		_, out := v["output_cost_per_token"].(json.Number)
		_, tiered := v["tiered_pricing"]
		if !(in && out) && !tiered {
			continue
		}
		if mode == "chat" {
			chat++
		}
		group, _ := v["litellm_provider"].(string)
		prov := modelid.Provider(group)
		keys[[2]string{prov, modelid.Key(prov, name)}]++
		rows = append(rows, row{prov, name, v})
	}
	if len(rows) <= 2000 || chat < 1900 {
		t.Errorf("%d token-priced text models (%d chat) in the LiteLLM table; want more than 2,000", len(rows), chat)
	}
	for _, r := range rows {
		p, ok := c.Lookup(r.provider, r.name)
		if !ok {
			t.Errorf("Lookup(%q, %q): not in the catalog", r.provider, r.name)
			continue
		}
		key := modelid.Key(r.provider, r.name)
		if p.Model != key || keys[[2]string{r.provider, key}] > 1 || strings.Contains(p.Note, "corrected") || strings.Contains(p.Note, "tiered") {
			continue // a duplicate, a correction or tiered pricing: see disagreements.txt
		}
		for field, got := range map[string]int64{"input_cost_per_token": p.Input, "output_cost_per_token": p.Output} {
			n := r.v[field].(json.Number)
			want, _, err := decimal.Scale(string(n), PicoUSDPerUSD)
			if err != nil || got != want {
				t.Errorf("%s %s %s = %d pico-USD, want %s USD = %d", r.provider, r.name, field, got, n, want)
			}
		}
	}
}
