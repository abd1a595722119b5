package eventstest_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/events/eventstest"
)

// TestClusterKeepsAnR3StreamThroughANodeLoss: with one node of three down,
// an R3 stream still takes and keeps messages, and the node comes back on
// its store and catches up: all three replicas current with 30 messages.
func TestClusterKeepsAnR3StreamThroughANodeLoss(t *testing.T) {
	c := eventstest.StartCluster(t, 3)
	nc, err := nats.Connect(c.URLs(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Each call has its own short deadline: one made while the cluster
	// elects a leader fails and is tried again instead of hanging.
	try := func(call func(context.Context) error) bool {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		return call(cctx) == nil
	}
	var s jetstream.Stream
	eventstest.WaitFor(t, 30*time.Second, "an R3 stream", func() bool {
		return try(func(ctx context.Context) error {
			s, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Replicas: 3})
			return err
		})
	})
	publish := func(n int) {
		t.Helper()
		for i := range n {
			eventstest.WaitFor(t, 30*time.Second, "publish acknowledged", func() bool {
				return try(func(ctx context.Context) error { _, err := js.Publish(ctx, "t.x", []byte{byte(i)}); return err })
			})
		}
	}
	publish(10)
	c.Stop(0)
	publish(10)
	c.Restart(0)
	publish(10)
	eventstest.WaitFor(t, 30*time.Second, "30 messages in the stream", func() bool {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		info, err := s.Info(cctx)
		if err != nil || info.State.Msgs != 30 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
			return false
		}
		for _, r := range info.Cluster.Replicas {
			if r.Offline || !r.Current {
				return false
			}
		}
		return true
	})
}
