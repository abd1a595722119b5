package events_test

import (
	"testing"

	"github.com/refundhub/refundhub/internal/events"
)

func TestSubjects(t *testing.T) {
	if got := events.AcceptedSubject("1688", "ORDER_CREATE"); got != "callbacks.1688.ORDER_CREATE" {
		t.Errorf("AcceptedSubject = %q", got)
	}
	if got := events.ParkedSubject("taobao"); got != "parked.callbacks.taobao" {
		t.Errorf("ParkedSubject = %q", got)
	}
}
