package events

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/delay"
)

// ConnectOptions returns the nats.go options every long-running publisher
// uses: reconnect forever with capped, jittered exponential backoff (so a
// receiver recovers whenever NATS returns), connect retries at start-up, and
// no reconnect buffer, so that a publish while disconnected fails at once
// (the receiver then answers 503) instead of sitting in a buffer that would
// be flushed after the sender was already told to retry.
func ConnectOptions(name string) []nats.Option {
	return []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectBufSize(-1),
		nats.CustomReconnectDelay(ReconnectDelay),
		nats.PingInterval(10 * time.Second),
		nats.MaxPingsOutstanding(2),
	}
}

// ReconnectDelay is the backoff between reconnect rounds: 100ms doubling up
// to 5s, plus up to 25% random jitter so that many receivers do not reconnect in step.
func ReconnectDelay(attempts int) time.Duration {
	return delay.Jittered(delay.Doubling(100*time.Millisecond, 5*time.Second, attempts-1), 0.25)
}

// Errors returned by Publisher.Publish; both mean "not stored, tell the
// sender to retry".
var (
	// ErrNotConnected: the NATS connection is down (reconnecting or closed).
	ErrNotConnected = errors.New("nats not connected")
	// ErrPublishTimeout: no PubAck within the publish wait.
	ErrPublishTimeout = errors.New("no jetstream ack in time")
)

// DefaultPublishWait bounds the wait for one PubAck when the caller sets
// none: the receiver answers a push only after its PubAck, within the
// platform's 1000 ms, and a 503 in time is worth more than a 200 too late.
const DefaultPublishWait = 500 * time.Millisecond

// Ack is the stream's answer to a publish.
type Ack struct {
	Stream    string
	Sequence  uint64
	Duplicate bool // the Nats-Msg-Id was already stored inside the duplicate window
}

// DefaultPublishConns is how many NATS connections a receiver publishes on by
// default. Each connection has its own client flusher and reader and its own
// read loop in the server (all of them feed the one goroutine per stream
// that stores messages), so two connections let that I/O work run on both
// cores of a small machine; more connections mean more, smaller socket reads
// and writes. docs/benchmarks.md (Receiver, publish connections) has the
// runs that chose two.
const DefaultPublishConns = 2

// Publisher publishes messages to JetStream synchronously, each with a
// Nats-Msg-Id and a bounded wait for the PubAck. It publishes on one NATS
// connection or spreads publishes over several (NewPooledPublisher).
type Publisher struct {
	conns []*nats.Conn
	jss   []jetstream.JetStream
	muxes []*connMux // muxes[i] sends the requests of conns[i]
	wait  time.Duration
	next  atomic.Uint32 // round-robin position in conns
	// stream is the stream name of the latest ack. Every ack names the same
	// stream, so the decoder reuses this string instead of allocating one
	// per publish.
	stream atomic.Pointer[string]
}

// NewPublisher returns a Publisher on nc that waits at most wait for each
// ack (DefaultPublishWait if wait <= 0).
func NewPublisher(nc *nats.Conn, wait time.Duration) (*Publisher, error) {
	return NewPooledPublisher([]*nats.Conn{nc}, wait)
}

// NewPooledPublisher returns a Publisher that takes conns in turn for its
// publishes and waits at most wait for each ack (DefaultPublishWait if
// wait <= 0). A publish whose connection is down is tried on the next one
// within the same wait (the message was not sent: ConnectOptions keeps no
// reconnect buffer; and if it had been, the Nats-Msg-Id dedupes it), so the
// Publisher stores messages while any connection is up. It subscribes once on
// each connection, to its reply inbox. The caller owns the connections: it
// drains or closes every one of them.
func NewPooledPublisher(conns []*nats.Conn, wait time.Duration) (*Publisher, error) {
	if len(conns) == 0 {
		return nil, errors.New("publisher: no nats connection")
	}
	p := &Publisher{conns: slices.Clone(conns), wait: wait}
	if p.wait <= 0 {
		p.wait = DefaultPublishWait
	}
	for i, nc := range p.conns {
		if nc == nil {
			return nil, fmt.Errorf("publisher: nats connection #%d is nil", i+1)
		}
		js, err := jetstream.New(nc)
		if err != nil {
			return nil, fmt.Errorf("jetstream: %w", err)
		}
		p.jss = append(p.jss, js)
		mux, err := newConnMux(nc)
		if err != nil {
			for _, m := range p.muxes {
				_ = m.sub.Unsubscribe()
			}
			return nil, fmt.Errorf("publisher: nats connection #%d: %w", i+1, err)
		}
		p.muxes = append(p.muxes, mux)
	}
	return p, nil
}

// Connected reports whether at least one of the Publisher's connections is
// connected, that is whether a publish can reach NATS right now.
func (p *Publisher) Connected() bool {
	for _, nc := range p.conns {
		if nc.IsConnected() {
			return true
		}
	}
	return false
}

// JetStream returns a JetStream context on a connected connection of the
// Publisher (the first connection when none is), for stream management and
// readiness checks.
func (p *Publisher) JetStream() jetstream.JetStream {
	for i, nc := range p.conns {
		if nc.IsConnected() {
			return p.jss[i]
		}
	}
	return p.jss[0]
}

// Publish stores m (whose Header must be non-nil) with the given Nats-Msg-Id
// and returns the ack. It returns only after the stream acknowledged the
// message, or when the publish wait (or ctx) ran out. Errors wrap
// ErrNotConnected or ErrPublishTimeout when those apply.
//
// It is a core NATS request to the stream's subject plus a small PubAck
// decoder rather than jetstream.PublishMsg: the same protocol, without a
// context, an options struct and a reflective JSON decode per message (this
// is the receiver's hot path), and sent so that concurrent publishes share
// socket writes (see connMux). Like jetstream.PublishMsg it retries "no
// responders" (a stream leader election) within the wait.
func (p *Publisher) Publish(ctx context.Context, m *nats.Msg, msgID string) (Ack, error) {
	// No IsConnected pre-check: it takes the connection's lock on every
	// publish, and with ConnectOptions (no reconnect buffer) a publish while
	// disconnected fails at once anyway (and then tries the next connection).
	m.Header[HeaderMsgID] = []string{msgID}
	deadline := time.Now().Add(p.wait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	i := 0
	if len(p.conns) > 1 {
		i = int(p.next.Add(1) % uint32(len(p.conns)))
	}
	tried := 1
	for {
		if err := ctx.Err(); err != nil {
			return Ack{}, fmt.Errorf("publish %s: %w", m.Subject, err)
		}
		left := time.Until(deadline)
		if left <= 0 {
			return Ack{}, fmt.Errorf("publish %s: %w", m.Subject, ErrPublishTimeout)
		}
		resp, err := p.muxes[i].request(m, left)
		switch {
		case err == nil:
			var known string
			if s := p.stream.Load(); s != nil {
				known = *s
			}
			ack, err := decodePubAck(resp.Data, known)
			if err != nil {
				return Ack{}, fmt.Errorf("publish %s: %w", m.Subject, err)
			}
			if ack.Stream != known {
				name := ack.Stream
				p.stream.Store(&name)
			}
			return ack, nil
		case errors.Is(err, nats.ErrNoResponders) && time.Until(deadline) > noRespondersPause:
			select {
			case <-ctx.Done():
			case <-time.After(noRespondersPause):
			}
			continue
		case errors.Is(err, nats.ErrNoResponders):
			return Ack{}, fmt.Errorf("publish %s: no stream answers: %w", m.Subject, err)
		case errors.Is(err, nats.ErrTimeout):
			return Ack{}, fmt.Errorf("publish %s: %w: %w", m.Subject, ErrPublishTimeout, err)
		case notConnected(p.conns[i], err) && tried < len(p.conns):
			i = (i + 1) % len(p.conns)
			tried++
			continue
		case notConnected(p.conns[i], err):
			return Ack{}, fmt.Errorf("publish %s: %w: %w", m.Subject, ErrNotConnected, err)
		default:
			return Ack{}, fmt.Errorf("publish %s: %w", m.Subject, err)
		}
	}
}

// notConnected reports whether err from a request on nc means that nc is
// not connected. A connection that has not reached a server yet
// (RetryOnFailedConnect) knows no server features and refuses a message with
// headers as "headers not supported".
func notConnected(nc *nats.Conn, err error) bool {
	return errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrConnectionReconnecting) ||
		errors.Is(err, nats.ErrReconnectBufExceeded) || errors.Is(err, nats.ErrConnectionDraining) ||
		errors.Is(err, nats.ErrDisconnected) ||
		errors.Is(err, nats.ErrHeadersNotSupported) && !nc.IsConnected()
}

// noRespondersPause is the pause before retrying a publish nobody answered.
const noRespondersPause = 50 * time.Millisecond
