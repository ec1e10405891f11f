package records

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// NewID returns a new record id for a request that starts at t: a UUID of
// version 7 (RFC 9562) in its canonical 36-character form, such as
// "019a2b3c-4d5e-7f60-8a1b-2c3d4e5f6a7b". The first 48 bits are t in Unix
// milliseconds, so ids sort by start time to the millisecond; the other 74 bits
// that are not version or variant come from crypto/rand, so two ids never meet
// in practice, whatever clients send.
//
// Record ids are Tollgate's own. A client's x-request-id never becomes one: it
// may be empty, repeated or long, and the Redis sink makes writes idempotent by
// record id.
func NewID(t time.Time) string {
	var b [16]byte
	rand.Read(b[6:]) //nolint:errcheck // crypto/rand.Read never fails
	ms := uint64(t.UnixMilli())
	b[0], b[1], b[2] = byte(ms>>40), byte(ms>>32), byte(ms>>24)
	b[3], b[4], b[5] = byte(ms>>16), byte(ms>>8), byte(ms)
	b[6] = b[6]&0x0f | 0x70 // version 7
	b[8] = b[8]&0x3f | 0x80 // variant 10
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}
