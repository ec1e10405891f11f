package extproc

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestSignerRoundTrip(t *testing.T) {
	s, err := NewSigner([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	d := Decision{RequestID: "r", Route: "demo", Path: "/v1/messages?beta=true", KeyID: "alice", ExpiresUnix: testNow.Unix(), Model: "claude-sonnet-4-5", RecordID: "019a0000-0000-7000-8000-000000000000"}
	v, err := s.Sign(d)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Verify(v, testNow)
	if err != nil || got != d {
		t.Fatalf("Verify = %+v, %v", got, err)
	}
	if _, err := s.Verify(v, testNow.Add(time.Second)); err != errDecisionExpired {
		t.Errorf("one second after expiry: %v", err)
	}
	if _, err := NewSigner([]byte("short")); err == nil {
		t.Error("a short secret was accepted")
	}
	r1, _ := NewRandomSigner()
	r2, _ := NewRandomSigner()
	v1, _ := r1.Sign(d)
	if _, err := r2.Verify(v1, testNow); err != errDecisionInvalid {
		t.Errorf("another process's random secret verified: %v", err)
	}
}

func TestDecisionRejectsLineBreaks(t *testing.T) {
	s, _ := NewSigner([]byte(strings.Repeat("k", 32)))
	if _, err := s.Sign(Decision{RequestID: "r", Path: "/v1/messages\nx-evil: 1", ExpiresUnix: 1}); err == nil {
		t.Error("a path with a line break was signed")
	}
	// A payload with too few fields never verifies, even with a valid MAC.
	signed := decisionVersion + "." + b64.EncodeToString([]byte("only\nthree\nfields"))
	if _, err := s.Verify(signed+"."+b64.EncodeToString(s.mac(signed)), testNow); err != errDecisionInvalid {
		t.Errorf("short payload: %v", err)
	}
}

// Decisions one version apart verify both ways: an older payload without the
// model, and a newer one with fields this version does not know.
func TestDecisionFieldsAreAddedAtTheEnd(t *testing.T) {
	s, _ := NewSigner([]byte(strings.Repeat("k", 32)))
	exp := strconv.FormatInt(testNow.Unix(), 10)
	for _, c := range []struct {
		payload, model, recordID string
	}{
		{"r\ndemo\n/v1/messages\nalice\n" + exp, "", ""},
		{"r\ndemo\n/v1/messages\nalice\n" + exp + "\nclaude-sonnet-4-5", "claude-sonnet-4-5", ""},
		{"r\ndemo\n/v1/messages\nalice\n" + exp + "\nclaude-sonnet-4-5\nrec-1\nsome later field", "claude-sonnet-4-5", "rec-1"},
	} {
		signed := decisionVersion + "." + b64.EncodeToString([]byte(c.payload))
		d, err := s.Verify(signed+"."+b64.EncodeToString(s.mac(signed)), testNow)
		if err != nil || d.Route != "demo" || d.KeyID != "alice" || d.Model != c.model || d.RecordID != c.recordID {
			t.Errorf("%q: Verify = %+v, %v", c.payload, d, err)
		}
	}
}
