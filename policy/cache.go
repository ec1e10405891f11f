package policy

import "time"

// CacheScope is whose requests share cached responses.
type CacheScope string

// Cache scopes.
const (
	// CacheScopeTeam shares responses among the keys of one team (a key
	// without a team shares with itself only). The default.
	CacheScopeTeam CacheScope = "team"
	// CacheScopeKey shares nothing beyond one gateway key.
	CacheScopeKey CacheScope = "key"
	// CacheScopeGlobal shares responses among every key of the policy; it
	// must be asked for.
	CacheScopeGlobal CacheScope = "global"
)

// Defaults and bounds of the cache section.
const (
	// DefaultCacheMaxEntryBytes caps a cached response when max_entry_bytes
	// is not given: 1 MiB.
	DefaultCacheMaxEntryBytes = 1 << 20
	// MaxCacheEntryBytes bounds max_entry_bytes: 4 MiB, the stores' own cap.
	MaxCacheEntryBytes = 4 << 20
	// MaxCacheTTL bounds ttl: 30 days.
	MaxCacheTTL = 30 * 24 * time.Hour
)

// DefaultCacheExclude lists the body fields left out of the cache key when
// exclude_fields is not given: Claude Code's metadata.user_id, which holds
// the session id, so that it changes with every session but never changes
// an answer.
var defaultCacheExclude = []string{"metadata.user_id"}

// DefaultCacheExclude returns the body fields left out of cache keys by
// default.
func DefaultCacheExclude() []string { return append([]string(nil), defaultCacheExclude...) }

// Cache is the response cache setting of a route or a team.
type Cache struct {
	// TTL is how long a response is served from the cache.
	TTL time.Duration
	// MaxEntryBytes caps the response body stored; a larger response is
	// not cached. Default DefaultCacheMaxEntryBytes.
	MaxEntryBytes int
	// Scope says whose requests share responses. Default CacheScopeTeam.
	Scope CacheScope
	// ExcludeFields lists the request body fields (dotted paths from the
	// root) left out of the key. Default DefaultCacheExclude; empty keeps
	// every field.
	ExcludeFields []string
}

// CacheFor returns the cache setting of a request on route from team, or nil
// when its responses are not cached: the team's cache section when the team
// has one (cache: off turns caching off for the team), else the route's.
// route may be nil and team empty.
func (p *Policy) CacheFor(route *Route, team string) *Cache {
	if t, ok := p.Teams[team]; ok && team != "" && t.CacheSet {
		return t.Cache
	}
	if route != nil {
		return route.Cache
	}
	return nil
}
