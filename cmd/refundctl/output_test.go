package main

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestCell: one line, "-" for nothing, cut by internal/excerpt within the
// byte budget (so within as many columns) and never inside a character.
func TestCell(t *testing.T) {
	attention := "fee_out_of_bounds: applyPayment 9500 超过可退金额 500 (exceeds the refundable amount) " + strings.Repeat("细节", 40)
	for _, tt := range []struct {
		in   string
		max  int
		want string
	}{
		{"", 10, "-"},
		{"a\tb\nc\x00d", 0, "a b c d"},
		{"short", 10, "short"},
		{"0123456789abc", 10, "0123456789…"},
		{"超过可退金额", 7, "超过…"},
		{"bad \xff utf8", 0, "bad \uFFFD utf8"},
		{"bad \xff utf8 and long", 10, "bad \uFFFD ut…"},
	} {
		if got := cell(tt.in, tt.max); got != tt.want {
			t.Errorf("cell(%q, %d) = %q; want %q", tt.in, tt.max, got, tt.want)
		}
	}
	got := cell(attention, 80)
	if !strings.HasPrefix(got, "fee_out_of_bounds: applyPayment 9500 超过可退金额 500") || len(got) > 80+len("…") || !utf8.ValidString(got) {
		t.Errorf("cell(attention, 80) = %q (%d bytes); want the code and the platform's message first, at most 80 bytes and the ellipsis", got, len(got))
	}
}
