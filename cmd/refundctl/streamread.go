package main

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/replay"
)

// streamRange is a bounded read of the callback stream.
type streamRange struct {
	subjects []string  // subject filters; none: every subject
	fromSeq  uint64    // first sequence; 0: from since, or from the start
	since    time.Time // first stored time, when fromSeq is 0
	toSeq    uint64    // last sequence (inclusive); 0: no bound but the one below
}

// streamMsg is one message of a read, with the read's last sequence (so a
// reader can tell how much of the range is left).
type streamMsg struct {
	msg  jetstream.Msg
	meta *jetstream.MsgMetadata
	last uint64
}

// reader reads the callback stream (--stream) as replay does: package
// replay owns how, for refundctl and the console.
func (a *app) reader(js jetstream.JetStream) replay.Reader {
	return replay.Reader{JS: js, Stream: a.cfg.Stream, Timeout: a.cfg.Timeout}
}

// readStream reads r from the callback stream (replay.Reader.Read: an
// ephemeral ordered consumer, never past the stream's last sequence when
// it started) and calls visit for each message in order, until visit says
// stop, the range ends or nothing more matches.
func (a *app) readStream(ctx context.Context, js jetstream.JetStream, r streamRange, visit func(streamMsg) (more bool, err error)) error {
	rr := replay.Range{Subjects: r.subjects, FromSeq: r.fromSeq, Since: r.since, ToSeq: r.toSeq}
	return a.reader(js).Read(ctx, rr, func(m replay.Msg) (bool, error) {
		return visit(streamMsg{msg: m.Msg, meta: m.Meta, last: m.Last})
	})
}
