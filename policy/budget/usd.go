package budget

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tollgate-dev/tollgate/policy/pricing"
)

// MaxUSD is the largest USD amount ParseUSD accepts, in whole dollars. In
// pico-USD it stays below the int64 limit (about 9.2 million USD).
const MaxUSD = 9_000_000

// ParseUSD parses a positive decimal number of US dollars, such as "20",
// "0.50" or "1500.25", into pico-USD, exactly: the text is never converted
// through a float. At most twelve decimals (one pico-USD) are allowed, and
// an exponent is not: budgets are written as plain decimals.
func ParseUSD(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("empty amount")
	}
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("%s: an amount of USD must be positive", s)
	}
	whole, frac, dot := strings.Cut(s, ".")
	if !digits(whole) || dot && !digits(frac) || whole == "" && frac == "" {
		return 0, fmt.Errorf("%q is not a plain decimal number of USD, such as 20 or 0.50", s)
	}
	frac = strings.TrimRight(frac, "0")
	if len(frac) > 12 {
		return 0, fmt.Errorf("%s USD is more precise than one pico-USD (twelve decimals)", s)
	}
	whole = strings.TrimLeft(whole, "0")
	if len(whole) > len("9000000") {
		return 0, fmt.Errorf("%s USD is too large; the limit is %d USD", s, MaxUSD)
	}
	var v int64
	for _, c := range whole + frac + strings.Repeat("0", 12-len(frac)) {
		v = v*10 + int64(c-'0')
	}
	if v > MaxUSD*pricing.PicoUSDPerUSD {
		return 0, fmt.Errorf("%s USD is too large; the limit is %d USD", s, MaxUSD)
	}
	if v == 0 {
		return 0, fmt.Errorf("%s: an amount of USD must be positive", s)
	}
	return v, nil
}

// digits reports whether s is made of ASCII digits only (true for "").
func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// formatUSD formats pico-USD as an exact decimal number of dollars.
func formatUSD(pico int64) string { return pricing.FormatUSD(pico) }
