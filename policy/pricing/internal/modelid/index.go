package modelid

// Index finds catalog entries by provider and model key. Each entry is indexed
// under its own key and, when no entry has that key, under its Base; a Base
// shared by entries with different prices is ambiguous and not indexed. An
// Index is immutable once built and safe for concurrent use.
type Index struct {
	m map[providerKey]int32
}

type providerKey struct{ provider, key string }

// NewIndex indexes n entries. entry returns the canonical provider and the key
// (see Key) of entry i; keys must be unique per provider, and a later
// duplicate is ignored. samePrice reports whether entries i and j have equal
// prices, which decides whether a shared Base is ambiguous.
func NewIndex(n int, entry func(i int) (provider, key string), samePrice func(i, j int) bool) *Index {
	ix := &Index{m: make(map[providerKey]int32, n+n/2)}
	for i := range n {
		p, k := entry(i)
		if _, dup := ix.m[providerKey{p, k}]; !dup {
			ix.m[providerKey{p, k}] = int32(i)
		}
	}
	// Aliases by Base, in entry order; ambiguous ones are remembered so that a
	// third entry cannot make them unambiguous again.
	alias := map[providerKey]int32{}
	for i := range n {
		p, k := entry(i)
		b := Base(k)
		if b == k {
			continue
		}
		pk := providerKey{p, b}
		if _, primary := ix.m[pk]; primary {
			continue
		}
		j, seen := alias[pk]
		switch {
		case !seen:
			alias[pk] = int32(i)
		case j >= 0 && !samePrice(int(j), i):
			alias[pk] = -1
		}
	}
	for pk, i := range alias {
		if i >= 0 {
			ix.m[pk] = i
		}
	}
	return ix
}

// Lookup returns the entry of a key (see Key) under a canonical provider,
// trying its Candidates in order.
func (ix *Index) Lookup(provider, key string) (int, bool) {
	return ix.lookup(provider, key, 4)
}

// LookupExact finds only the key itself.
func (ix *Index) LookupExact(provider, key string) (int, bool) {
	return ix.lookup(provider, key, 1)
}

// LookupSameRegion is Lookup without the candidates that drop a Bedrock
// regional prefix: it finds only the key itself or its Base.
func (ix *Index) LookupSameRegion(provider, key string) (int, bool) {
	return ix.lookup(provider, key, 2)
}

// lookup tries the first n of Candidates(key), computing each only when the
// ones before it missed.
func (ix *Index) lookup(provider, key string, n int) (int, bool) {
	if i, ok := ix.m[providerKey{provider, key}]; ok {
		return int(i), true
	}
	if n < 2 {
		return 0, false
	}
	if b := Base(key); b != key {
		if i, ok := ix.m[providerKey{provider, b}]; ok {
			return int(i), true
		}
	}
	if n < 3 {
		return 0, false
	}
	if r := NoRegion(key); r != key {
		if i, ok := ix.m[providerKey{provider, r}]; ok {
			return int(i), true
		}
		if b := Base(r); b != r {
			if i, ok := ix.m[providerKey{provider, b}]; ok {
				return int(i), true
			}
		}
	}
	return 0, false
}
