package policy

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// hashV and hashW are the sha256 of the viewer tokens "v" and "w".
var (
	hashV = HashKey("v")
	hashW = HashKey("w")
)

func TestViewers(t *testing.T) {
	p := parseBudgets(t,
		"teams:",
		"  platform:",
		"    viewers: [{name: lead-alice, sha256: "+hashV+"}]",
		"  data:",
		"    viewers:",
		"      - {name: lead-bob, sha256: "+hashW+"}",
	)
	var got []string
	for _, v := range p.Viewers {
		got = append(got, v.Name+"@"+v.Team+"="+hex.EncodeToString(v.SHA256[:]))
	}
	want := []string{"lead-alice@platform=" + hashV, "lead-bob@data=" + hashW}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("viewers (-want +got):\n%s", diff)
	}
}

func TestViewersErrors(t *testing.T) {
	for _, tt := range []struct {
		name  string
		lines []string
		want  string
	}{
		{"not a list", []string{"teams: {platform: {viewers: lead}}"}, "teams.platform.viewers: expected a sequence of viewers"},
		{"no hash", []string{"teams: {platform: {viewers: [{name: a}]}}"}, "a viewer needs a name and a sha256"},
		{"a token, not its hash", []string{"teams: {platform: {viewers: [{name: a, sha256: tg-abc}]}}"}, "this looks like a token, not its hash"},
		{"unknown field", []string{"teams: {platform: {viewers: [{name: a, sha256: " + hashV + ", team: x}]}}"}, `unknown field "team"`},
		{"duplicate name", []string{"teams: {platform: {viewers: [{name: a, sha256: " + hashV + "}]}, data: {viewers: [{name: a, sha256: " + hashW + "}]}}"}, `duplicate viewer name "a"`},
		{"duplicate hash", []string{"teams: {platform: {viewers: [{name: a, sha256: " + hashV + "}, {name: b, sha256: " + hashV + "}]}}"}, "duplicate sha256"},
		{"a gateway key", []string{"teams: {platform: {viewers: [{name: a, sha256: " + hashK + "}]}}"}, `viewer "a" has the sha256 of a gateway key`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("p.yaml", budgetDoc(tt.lines...), LoadOptions{LookupEnv: anyEnv, ReadFile: noFiles})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}
