package policy

import (
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

var (
	cacheFields = []string{"ttl", "max_entry_bytes", "scope", "exclude_fields"}
	cacheScopes = []string{string(CacheScopeTeam), string(CacheScopeKey), string(CacheScopeGlobal)}
)

// cache decodes a cache section at path: a mapping (ttl required), or off
// (or false), which returns nil.
func (d *decoder) cache(n *yaml.Node, path string) *Cache {
	n = deref(n)
	if n.Kind == yaml.ScalarNode && (n.Value == "off" || n.Value == "false") {
		return nil
	}
	c := &Cache{MaxEntryBytes: DefaultCacheMaxEntryBytes, Scope: CacheScopeTeam, ExcludeFields: DefaultCacheExclude()}
	var ttlSeen bool
	ok := d.fields(n, path, cacheFields, func(field string, fk, fv *yaml.Node) {
		fv = deref(fv)
		switch field {
		case "ttl":
			ttlSeen = true
			c.TTL = d.cacheTTL(fv, path+".ttl")
		case "max_entry_bytes":
			v, err := strconv.Atoi(strings.ReplaceAll(fv.Value, "_", ""))
			switch {
			case fv.Kind != yaml.ScalarNode || fv.ShortTag() != "!!int" || err != nil:
				d.errorf(fv, path+".max_entry_bytes", "expected a whole number of bytes, such as 262144, got %s", describe(fv))
			case v <= 0:
				d.errorf(fv, path+".max_entry_bytes", "must be positive; leave the cache out to cache nothing")
			case v > MaxCacheEntryBytes:
				d.errorf(fv, path+".max_entry_bytes", "%d is above the cap of %d bytes (4 MiB)", v, MaxCacheEntryBytes)
			default:
				c.MaxEntryBytes = v
			}
		case "scope":
			s, ok := d.nonEmptyStr(fv, path+".scope")
			if !ok {
				return
			}
			switch CacheScope(s) {
			case CacheScopeTeam, CacheScopeKey, CacheScopeGlobal:
				c.Scope = CacheScope(s)
			default:
				d.errorf(fv, path+".scope", "must be team, key or global, not %q%s", s, didYouMean(s, cacheScopes))
			}
		case "exclude_fields":
			c.ExcludeFields = d.excludeFields(fv, path+".exclude_fields")
		}
	})
	if ok && !ttlSeen {
		d.errorf(n, path, "ttl is required: how long a response is served from the cache, such as {ttl: 1h}")
	}
	return c
}

// cacheTTL decodes a cache ttl: a duration from 1s to MaxCacheTTL, whole
// seconds.
func (d *decoder) cacheTTL(n *yaml.Node, path string) time.Duration {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		d.errorf(n, path, "expected a duration such as 10m or 1h, got %s", describe(n))
		return 0
	}
	v, err := time.ParseDuration(n.Value)
	switch {
	case err != nil:
		d.errorf(n, path, "expected a duration such as 10m or 1h, got %q", n.Value)
	case v < time.Second:
		d.errorf(n, path, "must be at least 1s, got %q", n.Value)
	case v > MaxCacheTTL:
		d.errorf(n, path, "must be at most 720h (30 days), got %q", n.Value)
	case v%time.Second != 0:
		d.errorf(n, path, "must be whole seconds, got %q", n.Value)
	default:
		return v
	}
	return 0
}

// excludeFields decodes a sequence of dotted field paths.
func (d *decoder) excludeFields(n *yaml.Node, path string) []string {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "expected a sequence of body fields such as [metadata.user_id], got %s%s", describe(n), nullHint(n, "; write [] to keep every field in the key"))
		return nil
	}
	out := []string{}
	for _, item := range n.Content {
		item = deref(item)
		s, ok := d.nonEmptyStr(item, path)
		if !ok {
			continue
		}
		if slicesContainsEmpty(strings.Split(s, ".")) {
			d.errorf(item, path, "%q: a field path is member names joined by '.', such as metadata.user_id", s)
			continue
		}
		out = append(out, s)
	}
	return out
}

func slicesContainsEmpty(parts []string) bool {
	for _, p := range parts {
		if p == "" {
			return true
		}
	}
	return false
}
