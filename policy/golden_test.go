package policy

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestGolden loads each testdata/*.yaml with an empty environment and
// compares the errors and warnings with the .golden file beside it. The golden
// files are this package's own output, reviewed by hand when they change.
func TestGolden(t *testing.T) {
	paths, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			p, err := LoadFile(path, LoadOptions{LookupEnv: env(nil), ReadFile: os.ReadFile, RequireSecrets: true})
			var b strings.Builder
			b.WriteString("# errors\n")
			for _, s := range problems(t, err) {
				b.WriteString(s + "\n")
			}
			b.WriteString("# warnings\n")
			if p != nil {
				for _, s := range strs(p.Warnings) {
					b.WriteString(s + "\n")
				}
			}
			golden := strings.TrimSuffix(path, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), b.String()); diff != "" {
				t.Errorf("%s (-want +got):\n%s", golden, diff)
			}
		})
	}
}
