package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Viewer is a read-only token of the admin port for one team (a team
// lead's): it reads that team's records and spend totals, nothing else, and
// never the budgets API. The policy stores only the token's SHA-256, as for
// gateway keys; `tollgate hash-key --generate` makes a token and its hash.
type Viewer struct {
	// Name names the token in logs and errors; unique in the policy.
	Name string
	// Team is the team it reads.
	Team string
	// SHA256 is the digest of the token.
	SHA256 [sha256.Size]byte
}

// viewerFields are the fields of an entry of teams.<team>.viewers.
var viewerFields = []string{"name", "sha256"}

// viewerSeen remembers the viewers decoded so far, for duplicate checks
// across teams and against the gateway keys.
type viewerSeen struct {
	names   map[string]*yaml.Node
	digests map[string]*yaml.Node
}

// viewers decodes teams.<team>.viewers: a sequence of {name, sha256}.
func (d *decoder) viewers(n *yaml.Node, path, team string, seen *viewerSeen) []Viewer {
	n = deref(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "expected a sequence of viewers ({name: lead-alice, sha256: <hex>}), got %s", describe(n))
		return nil
	}
	if seen.names == nil {
		seen.names, seen.digests = map[string]*yaml.Node{}, map[string]*yaml.Node{}
	}
	var out []Viewer
	for i, item := range n.Content {
		item = deref(item)
		ipath := fmt.Sprintf("%s[%d]", path, i)
		var v Viewer
		var sum string
		ok := d.fields(item, ipath, viewerFields, func(field string, fk, fv *yaml.Node) {
			switch field {
			case "name":
				s, ok := d.nonEmptyStr(fv, ipath+".name")
				if !ok {
					return
				}
				if !validToken(s) {
					d.errorf(fv, ipath+".name", "invalid viewer name; use at most %d printable characters without spaces", maxTokenBytes)
					return
				}
				if first, dup := seen.names[s]; dup {
					d.errorf(fv, ipath+".name", "duplicate viewer name %q (also at line %d)", s, first.Line)
					return
				}
				seen.names[s] = fv
				v.Name = s
			case "sha256":
				s, ok := d.str(fv, ipath+".sha256")
				if !ok {
					return
				}
				if !validSHA256(s) {
					hint := "the output of `tollgate hash-key`"
					if strings.HasPrefix(s, keyPrefix) {
						hint = "this looks like a token, not its hash; paste the output of `tollgate hash-key` instead"
					}
					d.errorf(fv, ipath+".sha256", "must be 64 lowercase hex digits (%s)", hint)
					return
				}
				if first, dup := seen.digests[s]; dup {
					d.errorf(fv, ipath+".sha256", "duplicate sha256: the same token is already a viewer at line %d", first.Line)
					return
				}
				seen.digests[s] = fv
				sum = s
			}
		})
		if !ok {
			continue
		}
		if v.Name == "" || sum == "" {
			d.errorf(item, ipath, "a viewer needs a name and a sha256 (the output of `tollgate hash-key`)")
			continue
		}
		v.Team = team
		_, _ = hex.Decode(v.SHA256[:], []byte(sum))
		out = append(out, v)
	}
	return out
}

// checkViewers refuses a viewer token that is also a gateway key: the same
// secret would open the admin port and the gateway.
func (d *decoder) checkViewers(p *Policy, seen *viewerSeen) {
	for _, v := range p.Viewers {
		if _, clash := p.keyIndex[v.SHA256]; clash {
			d.errorf(seen.digests[hex.EncodeToString(v.SHA256[:])], "teams."+v.Team+".viewers",
				"viewer %q has the sha256 of a gateway key; a viewer token must be a secret of its own", v.Name)
		}
	}
}
