package intake_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/refundhub/refundhub/internal/callback/intake"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/testenv/syncbuf"
)

// lockedBuffer is a log and output sink the test reads while it is written.
type lockedBuffer = syncbuf.Buffer

type nopPublisher struct{}

func (nopPublisher) Publish(context.Context, *nats.Msg, string) (events.Ack, error) {
	return events.Ack{}, nil
}

// TestRefusedPushesAreLoggedAtWarnRateLimited: a push refused at the door
// (a wrong token, a malformed body) is a hint lost until the platform's
// retry 30 minutes later, so it is logged at warn with its reason; a burst
// gives one line, and the token never appears.
func TestRefusedPushesAreLoggedAtWarnRateLimited(t *testing.T) {
	var logs lockedBuffer
	srv, err := intake.New(intake.Config{Token: testToken}, nopPublisher{},
		func(context.Context) error { return nil }, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	const wrong = "wrong-token-0123456789abcdef"
	for range 5 {
		if r := post(t, hs.URL+"/callbacks/"+wrong, []byte(`{}`), nil); r.status/100 != 4 {
			t.Fatalf("wrong token: %d; want a 4xx", r.status)
		}
	}
	if r := post(t, hs.URL+"/callbacks/"+testToken, []byte(`not json`), nil); r.status != 400 {
		t.Fatalf("bad body: %d; want 400", r.status)
	}
	out := logs.String()
	if n := strings.Count(out, "callback refused"); n != 1 {
		t.Errorf("%d warnings for a burst of 6 refusals; want 1:\n%s", n, out)
	}
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "code=") || !strings.Contains(out, "reason=") {
		t.Errorf("warning lacks its level, code or reason:\n%s", out)
	}
	if strings.Contains(out, wrong) || strings.Contains(out, testToken) {
		t.Errorf("a token reached the log:\n%s", out)
	}
}
