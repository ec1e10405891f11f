package policy

import (
	"regexp"
	"testing"
)

func TestHashKey(t *testing.T) {
	tests := []struct{ key, want string }{
		{"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"k", hashK},
		{"j", hashJ},
		{"tg-demo-key", "e7aab4b439baa8c615eb31e352f5b4259085813fbcd95a65a5a346a6bdfb1bb3"},
	}
	for _, tt := range tests {
		if got := HashKey(tt.key); got != tt.want {
			t.Errorf("HashKey(%q) = %s, want %s", tt.key, got, tt.want)
		}
		if !validSHA256(HashKey(tt.key)) {
			t.Errorf("HashKey(%q) is not accepted as a policy sha256", tt.key)
		}
	}
}

func TestGenerateKey(t *testing.T) {
	shape := regexp.MustCompile(`^tg-[0-9A-Za-z]{43}$`)
	seen := map[string]bool{}
	for range 100 {
		k, err := GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		if !shape.MatchString(k) {
			t.Fatalf("GenerateKey() = %q, want tg- and 43 base62 characters", k)
		}
		if seen[k] {
			t.Fatalf("GenerateKey() repeated %q", k)
		}
		seen[k] = true
	}
}
