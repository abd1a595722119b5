package casework

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/events/eventstest"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// commandStream is a command stream on a fresh server, and a publisher of
// commands for Taobao sub-orders on it.
type commandStream struct {
	t      *testing.T
	js     jetstream.JetStream
	stream jetstream.Stream
	n      int
}

func newCommandStream(t *testing.T) *commandStream {
	t.Helper()
	js := eventstest.Start(t).JetStream()
	ctx := context.Background()
	cfg := events.DefaultWorkStreamsConfig()
	if err := events.EnsureWorkStreams(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, cfg.CommandStream)
	if err != nil {
		t.Fatal(err)
	}
	return &commandStream{t: t, js: js, stream: st}
}

// publish stores a message for subOrder's case and returns its sequence.
func (c *commandStream) publish(subOrder string) uint64 {
	c.t.Helper()
	c.n++
	cmd := refundflow.Command{ID: fmt.Sprintf("cmd-%d", c.n), Kind: refundflow.InputSendMessage,
		Platform: refundflow.PlatformTaobao, SubOrderID: subOrder, Message: "m"}
	b, err := json.Marshal(cmd)
	if err != nil {
		c.t.Fatal(err)
	}
	ack, err := c.js.Publish(context.Background(), events.CommandSubject("taobao", "send_message", refundflow.OrderKey(b)), b)
	if err != nil {
		c.t.Fatal(err)
	}
	return ack.Sequence
}

// TestTheLookUpFindsACasesCommandsInOrder: the commands issued for a case
// between two sequences are found by its subject token, in order; those of
// another case whose key makes the same token are not; a look-up that
// reads maxEarlier messages stops there and says how far it read.
func TestTheLookUpFindsACasesCommandsInOrder(t *testing.T) {
	c := newCommandStream(t)
	cl := &commandLog{stream: c.stream}
	ctx := context.Background()
	const key = "taobao:a:b" // its token, taobao_a_b, is also sub-order a_b's
	var want []uint64
	want = append(want, c.publish("a:b"))
	c.publish("a_b")
	c.publish("other")
	want = append(want, c.publish("a:b"))
	c.publish("a_b")
	later := c.publish("a:b")
	c.publish("a:b") // after the command looked behind
	got, upTo, err := cl.before(ctx, key, 1, later)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, m := range got {
		seqs = append(seqs, m.Sequence)
	}
	if fmt.Sprint(seqs) != fmt.Sprint(want) || upTo != later-1 {
		t.Errorf("before %d: found %v, read up to %d; want %v, up to %d", later, seqs, upTo, want, later-1)
	}
	if got, _, err := cl.before(ctx, key, want[1]+1, later); err != nil || len(got) != 0 {
		t.Errorf("from after the last one: %d found, %v; want none", len(got), err)
	}

	first := c.publish("many")
	for range maxEarlier {
		c.publish("many")
	}
	end := c.publish("end")
	got, upTo, err = cl.before(ctx, "taobao:many", first, end)
	if err != nil || len(got) != maxEarlier || upTo != first+maxEarlier-1 {
		t.Errorf("%d commands of one case: found %d, read up to %d, %v; want %d, up to %d (cut)",
			maxEarlier+1, len(got), upTo, err, maxEarlier, first+maxEarlier-1)
	}
	if got, upTo, err := cl.before(ctx, "taobao:many", upTo+1, end); err != nil || len(got) != 1 || upTo != end-1 {
		t.Errorf("the rest: found %d, read up to %d, %v; want 1, up to %d", len(got), upTo, err, end-1)
	}
}

// TestWhatIsKnownSettledIsNotLookedAtAgain: a look-up starts after the ack
// floor, or after what an earlier look-up found settled for the key if
// that is further; settled never goes back; what the floor has passed is
// forgotten.
func TestWhatIsKnownSettledIsNotLookedAtAgain(t *testing.T) {
	var cl commandLog
	if got := cl.from("k", 10); got != 11 {
		t.Errorf("nothing known: from %d; want 11 (after the floor)", got)
	}
	cl.settle("k", 50)
	cl.settle("k", 40)
	if got := cl.from("k", 10); got != 51 {
		t.Errorf("settled up to 50, then 40: from %d; want 51", got)
	}
	if got := cl.from("other", 10); got != 11 {
		t.Errorf("another key: from %d; want 11", got)
	}
	cl.fail(30)
	if got := cl.from("k", 10+maxEarlier+1); got != 10+maxEarlier+2 {
		t.Errorf("the floor past it: from %d; want after the floor", got)
	}
	if _, kept := cl.settled["k"]; kept || cl.failedOn(30) {
		t.Errorf("after the floor passed them: settled %v, failed on 30 %v; want both forgotten", cl.settled, cl.failedOn(30))
	}
}
