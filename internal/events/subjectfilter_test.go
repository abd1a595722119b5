package events

import "testing"

func TestSubjectMatches(t *testing.T) {
	for _, tc := range []struct {
		filter, subject string
		want            bool
	}{
		{"callbacks.1688.>", "callbacks.1688.ORDER_CREATE", true},
		{"callbacks.1688.>", "callbacks.1688", false},
		{"callbacks.*.ORDER_CREATE", "callbacks.taobao.ORDER_CREATE", true},
		{"callbacks.*.ORDER_CREATE", "callbacks.taobao.REFUND", false},
		{"commands.taobao.cancel", "commands.taobao.cancel", true},
		{"commands.taobao.cancel", "commands.taobao.cancel.x", false},
		{"commands.taobao", "commands.taobao.cancel", false},
		{">", "commands", true},
	} {
		if !ValidSubjectFilter(tc.filter) {
			t.Fatalf("ValidSubjectFilter(%q) = false", tc.filter)
		}
		if got := SubjectMatches(tc.filter, tc.subject); got != tc.want {
			t.Errorf("SubjectMatches(%q, %q) = %v; want %v", tc.filter, tc.subject, got, tc.want)
		}
	}
	for _, bad := range []string{"", "a..b", "a.b*", "a.>.b", "a b"} {
		if ValidSubjectFilter(bad) {
			t.Errorf("ValidSubjectFilter(%q) = true; want false", bad)
		}
	}
}
