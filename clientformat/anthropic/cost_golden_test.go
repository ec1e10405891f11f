package anthropic

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/tollgate-dev/tollgate/policy/pricing"
)

// TestGoldenCosts prices every usage fixture with the embedded catalog. The
// expected amounts were computed by hand from Anthropic's published rates (USD
// per million tokens, WIRE-FORMATS section 7): Sonnet 4.5 3 / 15 / 0.30 read /
// 3.75 5m / 6 1h, and above 200K input 6 / 22.50 / 0.60 / 7.50; Opus 4.5
// 5 / 25 / 0.50 / 6.25 / 10; Opus 4.1 15 / 75 / 1.50 / 18.75 / 30; Haiku 4.5
// 1 / 5 / 0.10 / 1.25 / 2; Haiku 3.5 0.80 / 4 / 0.08 / 1 / 1.60; web search
// $10 per 1,000.
func TestGoldenCosts(t *testing.T) {
	golden := map[string]string{
		"cache_5m_1h.sse":                "0.040285",   // 12×5 + 30500×0.5 + 2048×6.25 + 1000×10 + 87×25
		"cache_5m_1h.message.json":       "0.040285",   //
		"crlf.sse":                       "0.009372",   // 7×3 + 1536×6 + 9×15
		"delta_only_usage.sse":           "0.03055725", // 4522×3 + 4511×3.75 + 5×15
		"delta_split_1h.sse":             "0.036072",   // 9×3 + 6000×6 + 3×15
		"error_midstream.sse":            "0.018825",   // 50×15 + 12000×1.5 + 1×75 (usage so far)
		"long_context.sse":               "0.35328",    // 207,200 input > 200K: 3200×6 + 180000×0.6 + 24000×7.5 + 2048×22.5
		"long_context.message.json":      "0.35328",    //
		"malformed.sse":                  "0.000675",   // 100×3 + 25×15
		"multi_delta.sse":                "0.0037",     // 2000×1 + 1500×0.1 + 310×5
		"no_cache_creation.sse":          "0.001488",   // 30×0.8 + 800×0.08 + 1200×1 + 50×4
		"no_cache_creation.message.json": "0.001488",   //
		"ping_comments.sse":              "0.0010346",  // 320×1 + 4096×0.1 + 61×5
		"plain.sse":                      "0.0003",     // 25×3 + 15×15
		"plain.message.json":             "0.0003",     //
		"server_tools.sse":               "0.0557",     // 9800×3 + 420×15, plus 2 searches × $0.01
		"server_tools.message.json":      "0.0557",     //
		"thinking.sse":                   "0.0246",     // 410×5 + 902×25 (thinking is inside output)
		"thinking.message.json":          "0.0246",     //
		"unnamed_events.sse":             "0.001242",   // 14×3 + 2200×0.3 + 36×15
	}
	cat := pricing.Embedded()
	for name, want := range golden {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			var u pricing.Usage
			var model string
			if filepath.Ext(name) == ".sse" {
				var p StreamParser
				p.Write(data)
				u, model = p.Usage(), p.Model()
			} else if u, model, err = ParseMessage(data); err != nil {
				t.Fatal(err)
			}
			price, err := cat.Resolve("anthropic", model, pricing.Deny)
			if err != nil {
				t.Fatalf("%s: %v", model, err)
			}
			if got := pricing.FormatUSD(pricing.Cost(u, price)); got != want {
				t.Errorf("%s (%s): cost %s; want %s (usage %+v)", name, model, got, want, u)
			}
		})
	}
}
