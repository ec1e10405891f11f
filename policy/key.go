package policy

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/big"
	"strings"
)

// Key is the identity behind a gateway API key. The policy stores only the
// key's SHA-256; Key holds what a request is attributed to.
type Key struct {
	ID       string
	User     string
	Team     string
	Project  string
	Metadata map[string]string
}

// keyPrefix starts every key made by GenerateKey, so that leaked keys are easy
// to recognise in scanners and logs.
const keyPrefix = "tg-"

// keyChars is the length of the base62 part of a generated key: 32 random
// bytes need 43 base62 digits.
const keyChars = 43

// HashKey returns the lowercase hex SHA-256 of key, the value the policy file
// stores in a key's sha256 field.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// GenerateKey returns a new gateway key: "tg-" followed by 32 bytes from
// crypto/rand written in base62 (digits and ASCII letters, zero-padded to 43
// characters), so a double click selects the whole key.
func GenerateKey() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate key: %w", err)
	}
	s := new(big.Int).SetBytes(b[:]).Text(62)
	return keyPrefix + strings.Repeat("0", keyChars-len(s)) + s, nil
}

// validSHA256 reports whether s is 64 lowercase hex digits.
func validSHA256(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
