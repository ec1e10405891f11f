// Package decimal converts between decimal text and integer amounts without
// floating point, for the price catalog and its generator.
package decimal

import (
	"fmt"
	"math/big"
	"regexp"
	"strconv"
)

// number matches JSON's number grammar, which also covers YAML's plain
// decimal numbers; a leading '-' is accepted here and rejected by callers
// that need non-negative values.
var number = regexp.MustCompile(`^-?[0-9]*(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

// Scale returns text × mult as an integer, rounded to the nearest integer with
// halves rounded away from zero, and whether no rounding was needed. text is a
// decimal number as written in JSON ("3e-06", "0.0000029999900000000002") or
// YAML ("0.30", ".5"); it is parsed exactly, never as a float.
func Scale(text string, mult int64) (v int64, exact bool, err error) {
	if !number.MatchString(text) || !hasDigit(text) {
		return 0, false, fmt.Errorf("%q is not a decimal number", text)
	}
	r, ok := new(big.Rat).SetString(text)
	if !ok {
		return 0, false, fmt.Errorf("%q is not a decimal number", text)
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	n := new(big.Int)
	exact = r.IsInt()
	if exact {
		n.Set(r.Num())
	} else {
		// Round half away from zero: trunc((2·num + sign·den) / (2·den)).
		num := new(big.Int).Mul(r.Num(), big.NewInt(2))
		if r.Sign() < 0 {
			num.Sub(num, r.Denom())
		} else {
			num.Add(num, r.Denom())
		}
		n.Quo(num, new(big.Int).Mul(r.Denom(), big.NewInt(2)))
	}
	if !n.IsInt64() {
		return 0, false, fmt.Errorf("%s is too large", text)
	}
	return n.Int64(), exact, nil
}

// Format formats v / 10^scale exactly, with at least minFrac and at most scale
// fraction digits, and no trailing zeros beyond minFrac. scale is at most 18.
func Format(v int64, scale, minFrac int) string {
	var buf [48]byte
	b := buf[:0]
	u := uint64(v)
	if v < 0 {
		b = append(b, '-')
		u = -u
	}
	pow := uint64(1)
	for range scale {
		pow *= 10
	}
	b = strconv.AppendUint(b, u/pow, 10)
	frac := u % pow
	var digitBuf [18]byte
	digits := digitBuf[:scale]
	for i := scale - 1; i >= 0; i-- {
		digits[i] = byte('0' + frac%10)
		frac /= 10
	}
	n := scale
	for n > minFrac && digits[n-1] == '0' {
		n--
	}
	if n > 0 {
		b = append(b, '.')
		b = append(b, digits[:n]...)
	}
	return string(b)
}

func hasDigit(s string) bool {
	for i := 0; i < len(s); i++ {
		if '0' <= s[i] && s[i] <= '9' {
			return true
		}
	}
	return false
}
