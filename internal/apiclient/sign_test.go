package apiclient

import (
	"testing"

	"github.com/refundhub/refundhub/internal/platform"
)

func TestSignVectors(t *testing.T) {
	// Synthetic vectors from reference §2.2.
	tests := []struct {
		key, ts, nonce, secret, want string
	}{
		{"58c0201dfdf148eca63cbf6bb5e7cf03", "1715669977082", "nonce-str", "test-secret", "47CB965C3AB252BDF9ED348A90C6B66D"},
		{"58c0201dfdf148eca63cbf6bb5e7cf03", "1715669977082", "", "test-secret", "94053634807604F731DA1BD269CD339A"},
	}
	for _, tt := range tests {
		if got := Sign(platform.Default().Signature, tt.key, tt.ts, tt.nonce, tt.secret); got != tt.want {
			t.Errorf("Sign(%q, %q, %q, secret) = %s; want %s", tt.key, tt.ts, tt.nonce, got, tt.want)
		}
	}
}

func TestNewNonce(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		n, err := NewNonce()
		if err != nil {
			t.Fatalf("NewNonce: %v", err)
		}
		if len(n) != NonceLength {
			t.Fatalf("NewNonce() = %q, len %d; want %d", n, len(n), NonceLength)
		}
		for _, c := range n {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
				t.Fatalf("NewNonce() = %q has non-alphanumeric %q", n, c)
			}
		}
		if seen[n] {
			t.Fatalf("NewNonce() repeated %q", n)
		}
		seen[n] = true
	}
}
