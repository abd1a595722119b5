package casework

import (
	"fmt"
	"strings"
	"testing"
)

// TestCodeLabelsBounded: the platform's codes become label values only while
// they are short, plain and few; the rest count as "other".
func TestCodeLabelsBounded(t *testing.T) {
	var l codeLabels
	for _, tc := range []struct{ in, want string }{
		{"4091", "4091"},
		{"success=false", "success=false"},
		{"ORDER_NOT_EXIST", "ORDER_NOT_EXIST"},
		{"", "other"},
		{strings.Repeat("x", 33), "other"},
		{"bad code", "other"},
		{"退款失败", "other"},
		{"a\"b", "other"},
	} {
		if got := l.label(tc.in); got != tc.want {
			t.Errorf("label(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
	for i := range 2 * maxCodeLabels {
		l.label(fmt.Sprintf("E%d", i))
	}
	if n := len(l.seen); n != maxCodeLabels {
		t.Fatalf("%d distinct labels kept; want the cap %d", n, maxCodeLabels)
	}
	if got := l.label("E_NEW"); got != "other" {
		t.Errorf("a new code past the cap: %q; want other", got)
	}
	if got := l.label("4091"); got != "4091" {
		t.Errorf("a code seen before the cap: %q; want it kept", got)
	}
}
