package extproc

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Decision is what the policy role decided for a request, handed to the adapter
// role in the x-tollgate-internal-decision header. The adapter may run on another
// replica and on every retry attempt, so the decision carries everything it needs
// from the policy role, and it is signed so that nothing but a Tollgate holding the
// shared secret can produce one.
type Decision struct {
	RequestID string
	Route     string
	// Path is the client's original :path, query included. The adapter derives the
	// upstream path from it on every attempt, never from the current :path, which an
	// earlier attempt may have rewritten (ENVOY-EXTPROC section 12).
	Path  string
	KeyID string
	// ExpiresUnix bounds how long the decision is honoured.
	ExpiresUnix int64
	// Model is the model id the client asked for, with any "@route/" prefix
	// removed; empty when the request has no body. It tells the adapter at
	// request headers whether it will rewrite the body.
	Model string
	// RecordID is the request's own id (its record's), which the adapter's
	// logs and error bodies name. RequestID, by contrast, is the x-request-id
	// header that Envoy passes to both filters, to which the decision is bound.
	RecordID string
}

// The payload is the fields in a fixed order, separated by newlines, which
// none of them can contain (header values and policy names never do; the policy
// role refuses a model id with control characters). It is cheaper to write and
// read than JSON, on every request and every attempt. Fields are only ever added
// at the end, and a decoder ignores those it does not know, so replicas one
// version apart accept each other's decisions during a rolling upgrade.
const decisionMinFields = 5

func (d Decision) encode() ([]byte, error) {
	for _, f := range []string{d.RequestID, d.Route, d.Path, d.KeyID, d.Model, d.RecordID} {
		if strings.ContainsAny(f, "\n\r") {
			return nil, errors.New("decision field contains a line break")
		}
	}
	b := make([]byte, 0, len(d.RequestID)+len(d.Route)+len(d.Path)+len(d.KeyID)+len(d.Model)+len(d.RecordID)+26)
	b = append(b, d.RequestID...)
	b = append(b, '\n')
	b = append(b, d.Route...)
	b = append(b, '\n')
	b = append(b, d.Path...)
	b = append(b, '\n')
	b = append(b, d.KeyID...)
	b = append(b, '\n')
	b = strconv.AppendInt(b, d.ExpiresUnix, 10)
	b = append(b, '\n')
	b = append(b, d.Model...)
	b = append(b, '\n')
	return append(b, d.RecordID...), nil
}

func decodeDecision(payload []byte) (Decision, bool) {
	parts := strings.Split(string(payload), "\n")
	if len(parts) < decisionMinFields {
		return Decision{}, false
	}
	exp, err := strconv.ParseInt(parts[4], 10, 64)
	if err != nil {
		return Decision{}, false
	}
	d := Decision{RequestID: parts[0], Route: parts[1], Path: parts[2], KeyID: parts[3], ExpiresUnix: exp}
	if len(parts) > 5 {
		d.Model = parts[5]
	}
	if len(parts) > 6 {
		d.RecordID = parts[6]
	}
	return d, true
}

// decisionTTL is how long a signed decision stays valid. Attempts start before
// response headers, so a decision is used within seconds; the margin covers slow
// uploads of large bodies and clock skew between replicas.
const decisionTTL = 10 * time.Minute

const decisionVersion = "v1"

// Signer signs and verifies decisions with HMAC-SHA256. It is safe for
// concurrent use.
type Signer struct {
	key []byte
}

// NewSigner returns a Signer using secret, which must be at least 32 bytes.
func NewSigner(secret []byte) (*Signer, error) {
	if len(secret) < 32 {
		return nil, fmt.Errorf("decision secret is %d bytes; need at least 32", len(secret))
	}
	return &Signer{key: append([]byte(nil), secret...)}, nil
}

// NewRandomSigner returns a Signer with a fresh random secret. Decisions it signs
// verify only in this process, which suits a single replica.
func NewRandomSigner() (*Signer, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	return NewSigner(secret)
}

var b64 = base64.RawURLEncoding

// Sign encodes d as "v1.<payload>.<mac>".
func (s *Signer) Sign(d Decision) (string, error) {
	payload, err := d.encode()
	if err != nil {
		return "", err
	}
	signed := decisionVersion + "." + b64.EncodeToString(payload)
	return signed + "." + b64.EncodeToString(s.mac(signed)), nil
}

// Errors Verify returns.
var (
	errDecisionMissing = errors.New("no routing decision")
	errDecisionInvalid = errors.New("routing decision is malformed or not signed by this gateway")
	errDecisionExpired = errors.New("routing decision has expired")
)

// Verify checks the signature and expiry of a header value produced by Sign.
func (s *Signer) Verify(value string, now time.Time) (Decision, error) {
	var d Decision
	if value == "" {
		return d, errDecisionMissing
	}
	i := strings.LastIndexByte(value, '.')
	if i < 0 || !strings.HasPrefix(value, decisionVersion+".") {
		return d, errDecisionInvalid
	}
	signed, macText := value[:i], value[i+1:]
	mac, err := b64.DecodeString(macText)
	if err != nil || !hmac.Equal(mac, s.mac(signed)) {
		return d, errDecisionInvalid
	}
	payload, err := b64.DecodeString(signed[len(decisionVersion)+1:])
	if err != nil {
		return d, errDecisionInvalid
	}
	d, ok := decodeDecision(payload)
	if !ok {
		return d, errDecisionInvalid
	}
	if now.Unix() > d.ExpiresUnix {
		return d, errDecisionExpired
	}
	return d, nil
}

func (s *Signer) mac(signed string) []byte {
	h := hmac.New(sha256.New, s.key)
	h.Write([]byte(signed))
	return h.Sum(nil)
}
