package budget

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/policy/pricing"
)

func TestParseUSD(t *testing.T) {
	good := map[string]int64{
		"20":                  20 * pricing.PicoUSDPerUSD,
		"0.50":                pricing.PicoUSDPerUSD / 2,
		".5":                  pricing.PicoUSDPerUSD / 2,
		"1500.25":             1500_250_000_000_000,
		"0.000000000001":      1,
		"0.0000000000010000":  1,
		"9000000":             MaxUSD * pricing.PicoUSDPerUSD,
		"0009000000.00000000": MaxUSD * pricing.PicoUSDPerUSD,
	}
	for s, want := range good {
		if got, err := ParseUSD(s); err != nil || got != want {
			t.Errorf("ParseUSD(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "0", "0.0", "-1", "1e3", "1,5", "abc", ".", "0.0000000000001", "9000000.000000000001", "10000000", "+5", "1 000"} {
		if got, err := ParseUSD(s); err == nil {
			t.Errorf("ParseUSD(%q) = %d, want an error", s, got)
		}
	}
}

func TestCalendarWindow(t *testing.T) {
	tests := []struct {
		per        Window
		now        time.Time
		start, end time.Time
		id         int32
	}{
		// Sunday 30 March 2025, the day Berlin moves to summer time: 23 hours.
		{Day, at(2025, 3, 30, 12, 0, 0), at(2025, 3, 30, 0, 0, 0), at(2025, 3, 31, 0, 0, 0), 20250330},
		// 23:30 UTC on the 29th is 00:30 on the 30th in Berlin.
		{Day, time.Date(2025, 3, 29, 23, 30, 0, 0, time.UTC), at(2025, 3, 30, 0, 0, 0), at(2025, 3, 31, 0, 0, 0), 20250330},
		// The week of that Sunday started on Monday the 24th.
		{Week, at(2025, 3, 30, 23, 59, 59), at(2025, 3, 24, 0, 0, 0), at(2025, 3, 31, 0, 0, 0), 20250324},
		{Week, at(2025, 3, 31, 0, 0, 0), at(2025, 3, 31, 0, 0, 0), at(2025, 4, 7, 0, 0, 0), 20250331},
		// A week across a month and a year.
		{Week, at(2026, 1, 1, 8, 0, 0), at(2025, 12, 29, 0, 0, 0), at(2026, 1, 5, 0, 0, 0), 20251229},
		{Month, at(2025, 10, 26, 2, 30, 0), at(2025, 10, 1, 0, 0, 0), at(2025, 11, 1, 0, 0, 0), 202510},
		{Month, at(2025, 12, 31, 23, 0, 0), at(2025, 12, 1, 0, 0, 0), at(2026, 1, 1, 0, 0, 0), 202512},
	}
	for _, tt := range tests {
		start, end, id := calendarWindow(tt.per, tt.now, berlin)
		if !start.Equal(tt.start) || !end.Equal(tt.end) || id != tt.id {
			t.Errorf("%v at %v: [%v, %v) %d; want [%v, %v) %d", tt.per, tt.now, start, end, id, tt.start, tt.end, tt.id)
		}
	}
	// São Paulo dropped DST in 2019, but in 2018 its clocks went from 00:00
	// to 01:00 on 4 November: that day starts at 01:00.
	sp := mustLocation("America/Sao_Paulo")
	start, end, id := calendarWindow(Day, time.Date(2018, 11, 4, 12, 0, 0, 0, sp), sp)
	if start.Hour() != 1 || start.Day() != 4 || end.Sub(start) != 23*time.Hour || id != 20181104 {
		t.Errorf("a day whose midnight is skipped: [%v, %v) %d", start, end, id)
	}
	if _, end, id := calendarWindow(Day, time.Date(2018, 11, 3, 12, 0, 0, 0, sp), sp); !end.Equal(start) || id != 20181103 {
		t.Errorf("the day before ends at %v (%d), want %v", end, id, start)
	}
}

func TestLimitValidate(t *testing.T) {
	for _, l := range []Limit{{USD, Day, 1}, {Tokens, Minute, 1}, {Requests, Session, 1}, {Concurrent, NoWindow, 1}} {
		if err := l.Validate(); err != nil {
			t.Errorf("%v: %v", l, err)
		}
	}
	for _, l := range []Limit{{USD, Minute, 1}, {USD, Hour, 1}, {Concurrent, Day, 1}, {Requests, NoWindow, 1}, {USD, Day, 0}, {0, Day, 1}} {
		if err := l.Validate(); err == nil {
			t.Errorf("%v: valid", l)
		}
	}
}

func TestParseScope(t *testing.T) {
	for _, s := range []string{"key:alice-laptop", "team:platform", "session:a:b", "global", "provider:anthropic"} {
		sc, err := ParseScope(s)
		if err != nil || sc.String() != s {
			t.Errorf("ParseScope(%q) = %v, %v", s, sc, err)
		}
	}
	for _, s := range []string{"", "key", "key:", "wallet:x", "global:x", "Key:x"} {
		if sc, err := ParseScope(s); err == nil {
			t.Errorf("ParseScope(%q) = %v, want an error", s, sc)
		}
	}
}

func TestNamesRoundTrip(t *testing.T) {
	for u := USD; u <= Concurrent; u++ {
		if got, err := ParseUnit(u.String()); err != nil || got != u {
			t.Errorf("unit %v: %v, %v", u, got, err)
		}
	}
	for w := Minute; w <= Session; w++ {
		if got, err := ParseWindow(w.String()); err != nil || got != w {
			t.Errorf("window %v: %v, %v", w, got, err)
		}
	}
	for _, m := range []FailMode{FailClosed, FailOpen} {
		if got, err := ParseFailMode(m.String()); err != nil || got != m {
			t.Errorf("fail mode %v: %v, %v", m, got, err)
		}
	}
}

func TestDenialMessage(t *testing.T) {
	tests := []struct {
		d     Denial
		want  string
		retry int
	}{
		{
			Denial{Scope: keyA, Limit: Limit{USD, Day, usd("20")}, Used: usd("19.87"), Held: usd("0.40"), Requested: usd("0.52"), ResetAt: at(2025, 6, 2, 0, 0, 0)},
			"budget exceeded: key:alice-laptop has used $19.87 of its daily budget of $20.00 ($0.40 of it reserved by requests in flight); this request may use up to $0.52; it resets at 2025-06-02T00:00:00+02:00",
			0,
		},
		{
			Denial{Scope: teamP, Limit: Limit{Requests, Minute, 600}, Used: 600, Requested: 1, ResetAt: t0.Add(2500 * time.Millisecond), RetryAfter: 2500 * time.Millisecond},
			"rate limit: team:platform allows 600 requests per minute and 600 were used in the last minute; retry in 3s",
			3,
		},
		{
			Denial{Scope: keyA, Limit: Limit{Concurrent, NoWindow, 8}, Used: 8, Requested: 1, RetryAfter: time.Second},
			"concurrency limit: key:alice-laptop allows 8 requests at once and 8 are in flight; retry in 1s",
			1,
		},
		{
			Denial{Scope: keyA, Limit: Limit{Tokens, Day, 5000}, Used: 0, Requested: 9000, ResetAt: at(2025, 6, 2, 0, 0, 0)},
			"budget exceeded: key:alice-laptop has used 0 tokens of its daily budget of 5000 tokens; this request may use up to 9000 tokens; it exceeds the limit on its own: lower max_tokens or shorten the request",
			0,
		},
		{
			Denial{Scope: Scope{ScopeSession, "s1"}, Limit: Limit{USD, Session, usd("5")}, Used: usd("5"), Requested: 1, ResetAt: at(2025, 6, 2, 10, 0, 0)},
			"budget exceeded: session:s1 has used $5.00 of its per-session budget of $5.00; this request may use up to $0.000000000001; the session's budget expires at 2025-06-02T10:00:00+02:00",
			0,
		},
	}
	for _, tt := range tests {
		if got := tt.d.Message(); got != tt.want {
			t.Errorf("Message() =\n%s\nwant\n%s", got, tt.want)
		}
		if got := tt.d.RetryAfterSeconds(); got != tt.retry {
			t.Errorf("RetryAfterSeconds() = %d, want %d", got, tt.retry)
		}
	}
}

func TestInputBound(t *testing.T) {
	tests := []struct {
		name  string
		bytes int
		m     Media
		want  int64
	}{
		{"empty", 0, Media{}, 0},
		{"negative", -5, Media{}, 0},
		{"text: one token per byte", 100_000, Media{}, 100_000},
		// A blank 1000x1000 PNG is about 1,300 tokens in 5 KB of base64; a
		// URL image has no bytes at all. Each image counts MaxImageTokens
		// and its base64 data none.
		{"base64 image", 10_000, Media{Images: 1, Base64Bytes: 5_000}, 5_000 + MaxImageTokens},
		{"URL images", 500, Media{Images: 3}, 500 + 3*MaxImageTokens},
		{"base64 larger than the rest", 100, Media{Images: 1, Base64Bytes: 200}, MaxImageTokens},
		{"tools", 30_000, Media{Tools: 20}, 30_000 + ToolPromptTokens},
		{"typed tools", 400, Media{Tools: 2, TypedTools: 2}, 400 + ToolPromptTokens + 2*TypedToolTokens},
		{"a document reserves the cap", 2_000, Media{Documents: 1}, MaxEstimatedInputTokens},
		{"capped", 10 << 20, Media{}, MaxEstimatedInputTokens},
		{"capped with images", 900_000, Media{Images: 100}, MaxEstimatedInputTokens},
	}
	for _, tt := range tests {
		if got := InputBound(tt.bytes, tt.m); got != tt.want {
			t.Errorf("%s: InputBound(%d, %+v) = %d, want %d", tt.name, tt.bytes, tt.m, got, tt.want)
		}
	}
}

// TestInputBoundOvershoot is issue 9 item 7: a provider reporting more input
// than body bytes / 3 (the previous estimate) settled above the reservation.
// Dense text (one token per byte, such as digits or emoji-free punctuation)
// and images whose tokens exceed their bytes must stay within the bound.
func TestInputBoundOvershoot(t *testing.T) {
	const body = 30_000
	// Densest text: every byte a token.
	if got := InputBound(body, Media{}); got < body {
		t.Errorf("dense text: bound %d below the %d tokens it can cost", got, body)
	}
	// Ten blank 1092x1092 PNGs by URL: 10 x 1,590 tokens in a 2 KB body.
	if got, want := InputBound(2_000, Media{Images: 10}), int64(10*1590); got < want {
		t.Errorf("URL images: bound %d below %d", got, want)
	}
	// An Opus 4.7 image at its native 2576-pixel long edge, 3.75 MP, padded to
	// 28 pixels, is at most 3.75e6/784 + 2*2576/28 + 1 visual tokens.
	if MaxImageTokens < 3_750_000/784+2*2576/28+1 {
		t.Errorf("MaxImageTokens %d below the 3.75 MP image", MaxImageTokens)
	}
}

func TestFitOutput(t *testing.T) {
	cat := pricing.Embedded()
	opus, ok := cat.Lookup("anthropic", "claude-opus-4-5")
	if !ok {
		t.Fatal("no opus price")
	}
	for _, tt := range []struct {
		input, want, room int64
	}{
		{10_000, 128_000, 5 * pricing.PicoUSDPerUSD},
		{10_000, 128_000, 1 * pricing.PicoUSDPerUSD},
		{10_000, 1_000, 5 * pricing.PicoUSDPerUSD}, // fits already
		{300_000, 128_000, 5 * pricing.PicoUSDPerUSD},
		{10_000, 128_000, WorstCaseCost(opus, 10_000, 0)}, // room for the input only
	} {
		m := FitOutput(opus, tt.input, tt.want, tt.room)
		if m < 0 || m > tt.want {
			t.Errorf("FitOutput(%d, %d, %d) = %d", tt.input, tt.want, tt.room, m)
			continue
		}
		if c := WorstCaseCost(opus, tt.input, m); c > tt.room {
			t.Errorf("FitOutput(%d, %d, %d) = %d costs %d, above the room", tt.input, tt.want, tt.room, m, c)
		}
		if m < tt.want && WorstCaseCost(opus, tt.input, m+1) <= tt.room {
			t.Errorf("FitOutput(%d, %d, %d) = %d, but %d fits too", tt.input, tt.want, tt.room, m, m+1)
		}
	}
	if m := FitOutput(opus, 10_000, 128_000, WorstCaseCost(opus, 10_000, 0)-1); m != -1 {
		t.Errorf("no room for the input: got %d, want -1", m)
	}
}

func TestWorstCaseCost(t *testing.T) {
	cat := pricing.Embedded()
	sonnet, ok := cat.Lookup("anthropic", "claude-sonnet-4-5")
	if !ok {
		t.Fatal("no sonnet price")
	}
	const perMTok = pricing.PicoUSDPerUSD / 1_000_000
	// Below 200K input: input at the 1-hour cache write rate ($6), output at $15.
	if got, want := WorstCaseCost(sonnet, 100_000, 8_000), int64(100_000*6*perMTok+8_000*15*perMTok); got != want {
		t.Errorf("sonnet 100K in, 8K out: %s, want %s", formatUSD(got), formatUSD(want))
	}
	// Above: the long-context tier ($6 input, so $12 for 1-hour writes, and $22.50 output).
	if sonnet.LongContext == nil {
		t.Fatal("sonnet has no long-context tier")
	}
	if got, want := WorstCaseCost(sonnet, 300_000, 1_000), int64(300_000*12*perMTok+1_000*22_500_000); got != want {
		t.Errorf("sonnet 300K in: %s, want %s", formatUSD(got), formatUSD(want))
	}
	// A price without cache rates reserves input at the input rate.
	plain := pricing.Price{Rates: pricing.Rates{Input: 2 * perMTok, Output: 4 * perMTok}, WebSearchPerRequest: 10}
	if got, want := WorstCaseCost(plain, 1_000, 1_000), int64(6_000*perMTok); got != want {
		t.Errorf("plain: %d, want %d", got, want)
	}
	// Never less than the cost of any usage within the bounds.
	for _, u := range []pricing.Usage{
		{InputTokens: 100_000, OutputTokens: 8_000},
		{CacheWrite5mTokens: 100_000, OutputTokens: 8_000},
		{CacheWrite1hTokens: 60_000, CacheReadTokens: 40_000, OutputTokens: 8_000},
	} {
		if c := pricing.Cost(u, sonnet); c > WorstCaseCost(sonnet, 100_000, 8_000) {
			t.Errorf("usage %+v costs %s, above the worst case", u, formatUSD(c))
		}
	}
}

func TestEscapeName(t *testing.T) {
	tests := map[string]string{
		"alice-laptop": "alice-laptop",
		"a:b":          "a%3Ab",
		"}{x\n\t%":     "%7D%7Bx%0A%09%25",
		"":             "",
	}
	for in, want := range tests {
		if got := escapeName(in); got != want {
			t.Errorf("escapeName(%q) = %q, want %q", in, got, want)
		}
	}
	long := escapeName(strings.Repeat("x", 200))
	if len(long) != 33 || long[0] != '~' || long == escapeName(strings.Repeat("x", 201)) {
		t.Errorf("long names: %q", long)
	}
}

func TestConfigScopes(t *testing.T) {
	cfg := &Config{Limits: map[Scope][]Limit{
		keyA:                     {{USD, Day, 1}},
		teamP:                    {{USD, Month, 1}},
		{ScopeProvider, "a"}:     {{USD, Month, 1}},
		{ScopeProvider, "b"}:     {{USD, Month, 1}},
		{Kind: ScopeSession}:     {{USD, Session, 1}},
		Global:                   {{Requests, Minute, 1}},
		{ScopeUser, "not-alice"}: {{USD, Day, 1}},
	}}
	got := cfg.Request("id", Subject{Key: "alice-laptop", User: "alice", Team: "platform", Providers: []string{"b", "c", "b", "a"}, Session: "s"})
	var scopes []string
	for _, sl := range got.Scopes {
		scopes = append(scopes, sl.Scope.String())
	}
	want := []string{"key:alice-laptop", "team:platform", "provider:b", "provider:a", "session:s", "global"}
	if diff := cmp.Diff(want, scopes); diff != "" {
		t.Errorf("scopes (-want +got):\n%s", diff)
	}
	if !got.Limited(USD) || got.Limited(Tokens) {
		t.Error("Limited")
	}
	if len(cfg.Scopes(Subject{})) != 1 || (*Config)(nil).Scopes(Subject{Key: "k"}) != nil {
		t.Error("empty subject or nil config")
	}
}
