package casework

import (
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// keyOrder keeps the commands for one case (refundflow.OrderKey) in the
// order the consumer delivered them, which is the order they were issued:
// while one is being handled, the later ones wait here (reported in
// progress, so they are not redelivered) and then run one after another on
// the same handling slot. Without it, two goroutines for one case could
// reach the case's lock in either order.
type keyOrder struct {
	mu     sync.Mutex
	queues map[string][]waitingMsg // a key is present while one of its commands is handled
	queued int                     // commands waiting in the queues
	left   chan struct{}           // closed when one leaves its queue (waiting)
}

// waiting returns how many commands wait in the queues, and a channel
// closed when one of them leaves its queue to run.
func (k *keyOrder) waiting() (int, <-chan struct{}) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.left == nil {
		k.left = make(chan struct{})
	}
	return k.queued, k.left
}

type waitingMsg struct {
	m    jetstream.Msg
	stop func() // ends its in-progress reports
}

// join reports whether a command for key is being handled; if so, m waits
// behind it (inProgress reports it until it runs). If not, key is marked
// busy and the caller handles m.
func (k *keyOrder) join(key string, m jetstream.Msg, inProgress func(jetstream.Msg) func()) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.queues == nil {
		k.queues = map[string][]waitingMsg{}
	}
	q, busy := k.queues[key]
	if !busy {
		k.queues[key] = nil
		return false
	}
	_ = m.InProgress()
	k.queues[key] = append(q, waitingMsg{m: m, stop: inProgress(m)})
	k.queued++
	return true
}

// next returns the next command waiting for key, or nil, marking the key
// idle, when none waits.
func (k *keyOrder) next(key string) jetstream.Msg {
	k.mu.Lock()
	defer k.mu.Unlock()
	q := k.queues[key]
	if len(q) == 0 {
		delete(k.queues, key)
		return nil
	}
	k.queues[key] = q[1:]
	k.queued--
	if k.left != nil {
		close(k.left)
		k.left = nil
	}
	q[0].stop()
	return q[0].m
}
