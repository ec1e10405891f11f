package envoytest

import "strings"

// match finds the route for the request headers as the HCM does: the virtual
// host by :authority (exact, then suffix and prefix wildcards, then "*"),
// then the first route whose path and header matchers all match.
func (rt *routeTable) match(h *headerMap) *route {
	host := strings.ToLower(firstValue(h, ":authority"))
	vh := rt.virtualHost(host)
	if vh == nil {
		return nil
	}
	path := firstValue(h, ":path")
	for _, r := range vh.routes {
		if r.matches(path, h) {
			return r
		}
	}
	return nil
}

func (rt *routeTable) virtualHost(host string) *virtualHost {
	var best *virtualHost
	bestLen := -1
	var star *virtualHost
	for _, vh := range rt.vhosts {
		for _, d := range vh.domains {
			d = strings.ToLower(d)
			switch {
			case d == "*":
				if star == nil {
					star = vh
				}
			case d == host:
				return vh
			case strings.HasPrefix(d, "*") && strings.HasSuffix(host, d[1:]) && len(d) > bestLen:
				best, bestLen = vh, len(d)
			case strings.HasSuffix(d, "*") && strings.HasPrefix(host, d[:len(d)-1]) && len(d) > bestLen:
				best, bestLen = vh, len(d)
			}
		}
	}
	if best != nil {
		return best
	}
	return star
}

func (r *route) matches(path string, h *headerMap) bool {
	m := r.match
	noQuery := path
	if i := strings.IndexAny(noQuery, "?#"); i >= 0 {
		noQuery = noQuery[:i]
	}
	switch m.kind {
	case "prefix":
		if m.caseSensitive {
			if !strings.HasPrefix(path, m.value) {
				return false
			}
		} else if !strings.HasPrefix(strings.ToLower(path), strings.ToLower(m.value)) {
			return false
		}
	case "path":
		if m.caseSensitive {
			if noQuery != m.value {
				return false
			}
		} else if !strings.EqualFold(noQuery, m.value) {
			return false
		}
	case "regex":
		if !m.re.MatchString(noQuery) {
			return false
		}
	}
	for _, hm := range r.headers {
		vs := h.values(hm.name)
		var ok bool
		switch {
		case hm.present != nil:
			ok = (len(vs) > 0) == *hm.present
		case len(vs) == 0:
			ok = false
		default:
			ok = hm.match(strings.Join(vs, ","))
		}
		if ok == hm.invert {
			return false
		}
	}
	return true
}
