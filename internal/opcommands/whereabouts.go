package opcommands

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Whereabouts is where a published command the worker gave no verdict on
// is, as the consumers on its stream see it, for the operator who would
// otherwise be left asking whether the worker runs at all:
//
//   - a worker has taken it (JetStream delivered it): it is being decided,
//     which waits for the platform when the decision needs its word (a
//     rate limit, a slow answer) or for another input of its case;
//   - JetStream still holds it: a worker is about to take it, or none asks
//     for commands (its slots all taken, or none runs: a consumer shows
//     no pull request waiting either way);
//   - no consumer takes its subject: no worker has ever run against this
//     stream.
//
// It is read once, when the wait for a verdict ends; an error means only
// that JetStream could not say (the caller keeps the plain pending).
func Whereabouts(ctx context.Context, js jetstream.JetStream, ack Ack) (string, error) {
	s, err := js.Stream(ctx, ack.Stream)
	if err != nil {
		return "", fmt.Errorf("stream %s: %w", ack.Stream, err)
	}
	var takers []*jetstream.ConsumerInfo
	list := s.ListConsumers(ctx)
	for ci := range list.Info() {
		if ci != nil && takes(ci.Config, ack.Subject) {
			takers = append(takers, ci)
		}
	}
	if err := list.Err(); err != nil {
		return "", fmt.Errorf("consumers of %s: %w", ack.Stream, err)
	}
	if len(takers) == 0 {
		return fmt.Sprintf("sent; no worker takes commands: no consumer on stream %s takes %s (has a worker ever run against this NATS?)",
			ack.Stream, ack.Subject), nil
	}
	waiting, busy, took := 0, 0, ""
	for _, ci := range takers {
		waiting += ci.NumWaiting
		busy += ci.NumAckPending
		if ci.Delivered.Stream >= ack.Sequence {
			took = "sent; a worker took it"
			if ci.Delivered.Last != nil && ci.Delivered.Stream == ack.Sequence {
				took += " at " + ci.Delivered.Last.UTC().Format(time.TimeOnly) + " UTC"
			}
		}
	}
	if took != "" {
		took += " and has not decided it yet: a decision that needs the platform's word waits for the platform " +
			"(a rate limit, a slow answer: the worker's log says which), and a command waits for the input of its case in hand"
		if waiting == 0 {
			took += "; no worker asks for commands now (busy, or stopped: is the worker running? " +
				"A command a stopped worker held is handed out again once its ack wait has passed)"
		}
		return took, nil
	}
	if waiting > 0 {
		return "sent; waiting in JetStream, and a worker is asking for commands: it takes it next", nil
	}
	held := ""
	if busy > 0 {
		held = fmt.Sprintf(", %d commands in hand", busy)
	}
	return "sent; waiting in JetStream: no worker has asked for commands in the last seconds (every worker's slots are taken" + held +
		", or none runs: is the worker running?); it is decided once a worker takes it", nil
}

// takes reports whether a consumer configured as cfg takes subject.
func takes(cfg jetstream.ConsumerConfig, subject string) bool {
	filters := cfg.FilterSubjects
	if cfg.FilterSubject != "" {
		filters = append(filters, cfg.FilterSubject)
	}
	if len(filters) == 0 {
		return true
	}
	for _, f := range filters {
		if subjectMatches(f, subject) {
			return true
		}
	}
	return false
}

// subjectMatches is NATS subject matching: '*' is one token, a last '>'
// one or more.
func subjectMatches(filter, subject string) bool {
	ft, st := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, f := range ft {
		if f == ">" {
			return i == len(ft)-1 && len(st) > i
		}
		if i >= len(st) || (f != "*" && f != st[i]) {
			return false
		}
	}
	return len(ft) == len(st)
}
