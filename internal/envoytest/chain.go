package envoytest

// decodeTarget and encodeTarget are the two halves of an HTTP filter as the
// harness models it: request data flows down the decoder chain, response
// data up the encoder chain.
type decodeTarget interface {
	decodeHeaders(h *headerMap, eos bool)
	decodeData(b []byte, eos bool)
}

type encodeTarget interface {
	encodeHeaders(h *headerMap, eos bool)
	encodeData(b []byte, eos bool)
}

// filterChain is a list of ext_proc filters between a source and a terminal
// filter: the downstream chain ends in the router, an upstream chain (one per
// attempt) in the upstream codec.
type filterChain struct {
	s        *requestStream
	att      *attempt // nil for the downstream chain
	filters  []*extProcFilter
	tail     decodeTarget // router or upstream codec
	head     encodeTarget // downstream client or router
	upstream bool

	decodeStopped bool // a local reply or an abort ended the request path
	encodeStopped bool // the response path was abandoned
}

func newDownstreamChain(s *requestStream) *filterChain {
	c := &filterChain{s: s, tail: s.router, head: downstreamSink{s}}
	for i, fc := range s.h.conf.filters {
		c.filters = append(c.filters, newExtProcFilter(fc, c, i, s.perRoute(fc.name)))
	}
	return c
}

func (c *filterChain) decodeHeadersAt(i int, h *headerMap, eos bool) {
	if c.decodeStopped {
		return
	}
	if i < len(c.filters) {
		c.filters[i].decodeHeaders(h, eos)
		return
	}
	c.tail.decodeHeaders(h, eos)
}

func (c *filterChain) decodeDataAt(i int, b []byte, eos bool) {
	if c.decodeStopped {
		return
	}
	if i < len(c.filters) {
		c.filters[i].decodeData(b, eos)
		return
	}
	c.tail.decodeData(b, eos)
}

func (c *filterChain) encodeHeadersAt(i int, h *headerMap, eos bool) {
	if c.encodeStopped {
		return
	}
	if i >= 0 {
		c.filters[i].encodeHeaders(h, eos)
		return
	}
	c.head.encodeHeaders(h, eos)
}

func (c *filterChain) encodeDataAt(i int, b []byte, eos bool) {
	if c.encodeStopped {
		return
	}
	if i >= 0 {
		c.filters[i].encodeData(b, eos)
		return
	}
	c.head.encodeData(b, eos)
}

// stop abandons both directions and closes the chain's ext_proc streams.
func (c *filterChain) stop() {
	c.decodeStopped, c.encodeStopped = true, true
	c.closeStreams()
}

// closeStreams half-closes and resets every open ext_proc stream.
func (c *filterChain) closeStreams() {
	if c == nil {
		return
	}
	for _, f := range c.filters {
		f.closeStream(true)
	}
}
