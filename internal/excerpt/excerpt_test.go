package excerpt

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestOf(t *testing.T) {
	for _, tt := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly", 7, "exactly"},
		{"too long", 3, "too…"},
		{"退款单不存在", 7, "退款…"}, // 3 bytes a character: never split one
		{"退款", 2, "…"},
		{"a\xffb", 10, "a\uFFFDb"},
		{"abc", 0, "a…"},
	} {
		if got := Of(tt.in, tt.n); got != tt.want {
			t.Errorf("Of(%q, %d) = %q; want %q", tt.in, tt.n, got, tt.want)
		}
	}
	if got := Bytes([]byte("  {\"code\":1}\n"), 100); got != `{"code":1}` {
		t.Errorf("Bytes = %q", got)
	}
}

func TestCut(t *testing.T) {
	for _, tt := range []struct {
		in     string
		n      int
		want   string
		wantOK bool
	}{
		{"short", 10, "short", false},
		{"exactly", 7, "exactly", false},
		{"too long", 3, "too", true},
		{"退款单不存在", 7, "退款", true},
		{"a\xffb\xfe", 3, "a\xffb", true}, // invalid bytes are kept, not repaired
		{"abc", 0, "a", true},
	} {
		if got, cut := Cut(tt.in, tt.n); got != tt.want || cut != tt.wantOK {
			t.Errorf("Cut(%q, %d) = %q, %v; want %q, %v", tt.in, tt.n, got, cut, tt.want, tt.wantOK)
		}
		if got, cut := Cut([]byte(tt.in), tt.n); string(got) != tt.want || cut != tt.wantOK {
			t.Errorf("Cut([]byte(%q), %d) = %q, %v; want %q, %v", tt.in, tt.n, got, cut, tt.want, tt.wantOK)
		}
	}
}

func FuzzOf(f *testing.F) {
	f.Add("退款单不存在", 5)
	f.Add("a\xff\xfe", 1)
	f.Fuzz(func(t *testing.T, s string, n int) {
		got := Of(s, n%1000)
		if !utf8.ValidString(got) {
			t.Fatalf("Of(%q, %d) = %q: not valid UTF-8", s, n, got)
		}
		if clean := strings.ToValidUTF8(s, "\uFFFD"); !strings.HasPrefix(clean, strings.TrimSuffix(got, "…")) {
			t.Fatalf("Of(%q, %d) = %q: not a prefix", s, n, got)
		}
		if len(got) > max(n%1000, 1)+len("…") && got != strings.ToValidUTF8(s, "\uFFFD") {
			t.Fatalf("Of(%q, %d) = %q: too long", s, n, got)
		}
	})
}
