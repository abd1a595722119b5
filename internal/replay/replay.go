// Package replay re-delivers callbacks stored in the callback stream, in one
// place for refundctl replay and the console: it reads one message or a
// range by sequence (or time, or subject) with an ordered consumer, and
// sends each again either to the receiver over HTTP, exactly as the
// platform sent it, or straight into the stream with its original subject,
// headers (its trace headers moved aside: events.ResendHeader) and
// Nats-Msg-Id. Both front ends read and re-deliver the same way, so a
// replay stores, deduplicates and refuses alike whichever of them the
// operator used.
//
// What a replay achieves is the stream's and the worker's business: inside
// the stream's duplicate window a message republished with its
// Nats-Msg-Id is not stored again, and the worker's inbox drops a callback
// it already applied whenever it comes back. A replay therefore re-applies
// only what was never applied: a consumer reset past it, or (through the
// receiver only, which parses the bytes again) a parked type the receiver
// has since learnt.
package replay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/events"
)

// Range is a bounded read of the callback stream.
type Range struct {
	Subjects []string  // subject filters; none: every subject
	FromSeq  uint64    // first sequence; 0: from Since, or from the start
	Since    time.Time // first stored time, when FromSeq is 0
	ToSeq    uint64    // last sequence (inclusive); 0: no bound but the stream's last at the start
}

// Msg is one message of a read, with the read's last sequence (so a
// reader can tell how much of the range is left).
type Msg struct {
	Msg  jetstream.Msg
	Meta *jetstream.MsgMetadata
	Last uint64
}

// Item returns what a re-delivery needs of m.
func (m Msg) Item() Item {
	h := m.Msg.Headers()
	return Item{Seq: m.Meta.Sequence.Stream, Subject: m.Msg.Subject(), MsgID: h.Get(events.HeaderMsgID), Header: h,
		Data: m.Msg.Data(), Time: m.Meta.Timestamp}
}

// ErrNoStream is wrapped by a read of a stream that does not exist.
var ErrNoStream = errors.New("not found")

// Reader reads one callback stream.
type Reader struct {
	JS     jetstream.JetStream
	Stream string
	// Timeout bounds each JetStream request (the stream's info, each
	// fetch waits no longer than the server's answer).
	Timeout time.Duration
}

// Read reads r with an ephemeral ordered consumer (no acks, deleted by
// the server when idle: the stream itself is not changed) and calls visit
// for each message in order, until visit says stop, the range ends or
// nothing more matches. It never reads past the stream's last sequence
// when it started, so a replay into the same stream never reads its own
// output and a read ends while callbacks keep arriving.
func (rd Reader) Read(ctx context.Context, r Range, visit func(Msg) (more bool, err error)) error {
	stream, err := rd.stream(ctx)
	if err != nil {
		return err
	}
	end := stream.CachedInfo().State.LastSeq
	if r.ToSeq != 0 && r.ToSeq < end {
		end = r.ToSeq
	}
	if end == 0 || r.FromSeq > end {
		return nil
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: r.Subjects, InactiveThreshold: time.Minute}
	switch {
	case r.FromSeq > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, r.FromSeq
	case !r.Since.IsZero():
		since := r.Since
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	default:
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	}
	cons, err := stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("read stream %s: %w", rd.Stream, err)
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		batch, err := cons.FetchNoWait(100)
		if err != nil {
			return fmt.Errorf("read stream %s: %w", rd.Stream, err)
		}
		got := 0
		done := false
		for msg := range batch.Messages() {
			if done {
				continue // drain the batch
			}
			got++
			meta, err := msg.Metadata()
			if err != nil {
				return fmt.Errorf("read stream %s: %w", rd.Stream, err)
			}
			seq := meta.Sequence.Stream
			if seq > end {
				done = true
				continue
			}
			more, err := visit(Msg{Msg: msg, Meta: meta, Last: end})
			if err != nil {
				return err
			}
			if !more || seq >= end || meta.NumPending == 0 {
				done = true
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return fmt.Errorf("read stream %s: %w", rd.Stream, err)
		}
		if done || got == 0 {
			return nil
		}
	}
}

func (rd Reader) stream(ctx context.Context) (jetstream.Stream, error) {
	ictx, cancel := context.WithTimeout(ctx, rd.Timeout)
	defer cancel()
	stream, err := rd.JS.Stream(ictx, rd.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("stream %s %w (is the receiver running?)", rd.Stream, ErrNoStream)
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", rd.Stream, err)
	}
	return stream, nil
}

// ErrNotStored and ErrGone are wrapped by One's error for a sequence the
// stream never held (beyond its last) and for one it no longer holds (aged
// out after the stream's max age, or deleted).
var (
	ErrNotStored = errors.New("not stored yet")
	ErrGone      = errors.New("no longer in the stream")
)

// One reads the message at seq, through Read, so that a single replay is
// read as a range is. A sequence the stream does not hold is an error
// wrapping ErrNotStored or ErrGone that says which, and why.
func (rd Reader) One(ctx context.Context, seq uint64) (Item, error) {
	var it Item
	found := false
	err := rd.Read(ctx, Range{FromSeq: seq, ToSeq: seq}, func(m Msg) (bool, error) {
		it, found = m.Item(), true
		return false, nil
	})
	if err != nil || found {
		return it, err
	}
	stream, err := rd.stream(ctx)
	if err != nil {
		return it, err
	}
	info := stream.CachedInfo()
	if seq > info.State.LastSeq {
		return it, fmt.Errorf("stream %s has no message %d: its last is %d (%w)", rd.Stream, seq, info.State.LastSeq, ErrNotStored)
	}
	return it, fmt.Errorf("stream %s message %d is %w: the stream keeps callbacks for %s and now starts at %d, so it aged out (or was deleted)",
		rd.Stream, seq, ErrGone, info.Config.MaxAge, info.State.FirstSeq)
}

// Item is one callback to re-deliver.
type Item struct {
	Seq     uint64 // stream sequence (0: not from the stream)
	Subject string
	MsgID   string // Nats-Msg-Id ("": none, and the stream stores every copy)
	Header  nats.Header
	Data    []byte    // the stored raw bytes, as the platform sent them
	Time    time.Time // stored time (zero: not from the stream)
}

// Publisher stores a message in JetStream and returns its ack: what a
// replay into the stream needs of a jetstream.JetStream.
type Publisher interface {
	PublishMsg(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

// Stored is a replay into the stream: where the stream has the message,
// and whether it was stored already (Duplicate: its Nats-Msg-Id is inside
// the duplicate window, and Seq is the copy the stream kept).
type Stored struct {
	Stream    string
	Seq       uint64
	Duplicate bool
}

// ToStream publishes it again with its original subject, headers (those
// the server sets left out, events.ResendHeader) and Nats-Msg-Id, in ctx's
// trace: the trace it was in moves to Rh-Traceparent, which the worker's
// span links to. The publish error is returned unwrapped, for the caller
// to explain.
func ToStream(ctx context.Context, pub Publisher, it Item) (Stored, error) {
	h := events.ResendHeader(it.Header) // the stored id is set again below
	events.InjectTrace(ctx, h)
	var opts []jetstream.PublishOpt
	if it.MsgID != "" {
		opts = append(opts, jetstream.WithMsgID(it.MsgID))
	}
	ack, err := pub.PublishMsg(ctx, &nats.Msg{Subject: it.Subject, Data: it.Data, Header: h}, opts...)
	if err != nil {
		return Stored{}, err
	}
	return Stored{Stream: ack.Stream, Seq: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

// Poster posts a callback's raw bytes to the receiver exactly as the
// platform does (its callback URL carries the token, which only the poster
// holds): a transport failure is an error, any HTTP status an Answer.
type Poster interface {
	Post(ctx context.Context, body []byte) (Answer, error)
}

// Answer is the receiver's HTTP answer.
type Answer struct {
	Status int
	Body   string // the start of the body, trimmed
}

// OK reports a 2xx answer: the receiver stored (or had stored) the
// callback.
func (a Answer) OK() bool { return a.Status >= 200 && a.Status < 300 }

// RefusedError is a receiver's answer other than 2xx.
type RefusedError struct{ Answer Answer }

// Error implements error.
func (e *RefusedError) Error() string {
	return fmt.Sprintf("receiver answered %d", e.Answer.Status)
}

// ToReceiver posts its stored bytes through p; an answer other than 2xx
// is a *RefusedError with the answer.
func ToReceiver(ctx context.Context, p Poster, it Item) (Answer, error) {
	a, err := p.Post(ctx, it.Data)
	if err != nil {
		return a, err
	}
	if !a.OK() {
		return a, &RefusedError{Answer: a}
	}
	return a, nil
}
