package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/refundhub/refundhub/internal/callback"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/platform"
	"github.com/refundhub/refundhub/internal/replay"
)

// replayOptions are the replay flags.
type replayOptions struct {
	since, until     string
	fromSeq, toSeq   uint64
	seq              uint64 // one message: --from-seq = --to-seq = seq
	subjects         []string
	all              bool
	file             string
	to               string
	dryRun, progress bool
	limit            int
}

// replayRange is the validated stream selection.
type replayRange struct {
	since, until   time.Time
	fromSeq, toSeq uint64 // toSeq 0: no bound
	subjects       []string
	limit          int
}

// replayItem is one callback to re-deliver: from the stream (Seq, Time)
// or a file (Line).
type replayItem struct {
	replay.Item
	Line int // line number (file source)
}

// replayedJSON is one re-delivered callback in --json output.
type replayedJSON struct {
	Seq       uint64 `json:"seq,omitempty"`
	Line      int    `json:"line,omitempty"`
	Subject   string `json:"subject"`
	MsgID     string `json:"msgId"`
	Bytes     int    `json:"bytes"`
	StoredAt  string `json:"storedAt,omitempty"`
	Body      string `json:"body,omitempty"` // dry runs only
	Status    int    `json:"status,omitempty"`
	Response  string `json:"response,omitempty"`
	StreamSeq uint64 `json:"streamSeq,omitempty"`
	Duplicate bool   `json:"duplicate,omitempty"`
}

// parseWhen reads an RFC 3339 time, a "2006-01-02 15:04:05" UTC time, or a
// duration meaning that long ago (e.g. 2h).
func parseWhen(flag, s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, usagef("--%s %q: a duration must not be negative", flag, s)
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.DateTime, time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, usagef("--%s %q: want an RFC 3339 time (2026-05-20T15:40:00Z), \"2026-05-20 15:40:00\" (UTC) or a duration ago (2h)", flag, cell(s, 40))
}

func (o replayOptions) validate(now time.Time) (replayRange, error) {
	var r replayRange
	switch o.to {
	case "receiver", "stream":
	default:
		return r, usagef("--to %q: want receiver or stream", cell(o.to, 40))
	}
	if o.limit < 0 {
		return r, usagef("--limit %d: must not be negative", o.limit)
	}
	r.limit = o.limit
	if o.seq != 0 {
		if o.fromSeq != 0 || o.toSeq != 0 {
			return r, usagef("--seq is one message: do not combine it with --from-seq or --to-seq")
		}
		o.fromSeq, o.toSeq = o.seq, o.seq
	}
	streamSel := o.since != "" || o.until != "" || o.fromSeq != 0 || o.toSeq != 0 || len(o.subjects) > 0 || o.all
	if o.file != "" {
		if streamSel {
			return r, usagef("--file replays a file: do not combine it with --since, --until, --seq, --from-seq, --to-seq, --subject or --all")
		}
		return r, nil
	}
	if !streamSel {
		return r, usagef("say what to replay: --since/--until, --seq, --from-seq/--to-seq, --subject, --all or --file")
	}
	var err error
	if r.since, err = parseWhen("since", o.since, now); err != nil {
		return r, err
	}
	if r.until, err = parseWhen("until", o.until, now); err != nil {
		return r, err
	}
	if !r.since.IsZero() && !r.until.IsZero() && !r.since.Before(r.until) {
		return r, usagef("--since %s is not before --until %s", r.since.UTC().Format(time.RFC3339), r.until.UTC().Format(time.RFC3339))
	}
	if !r.since.IsZero() && r.since.After(now) {
		return r, usagef("--since %s is in the future", r.since.UTC().Format(time.RFC3339))
	}
	if (o.fromSeq != 0 || o.toSeq != 0) && (!r.since.IsZero() || !r.until.IsZero()) {
		return r, usagef("use a time range (--since/--until) or a sequence range (--from-seq/--to-seq), not both")
	}
	if o.toSeq != 0 && o.fromSeq > o.toSeq {
		return r, usagef("--from-seq %d is after --to-seq %d", o.fromSeq, o.toSeq)
	}
	r.fromSeq, r.toSeq = o.fromSeq, o.toSeq
	for _, s := range o.subjects {
		if !events.ValidSubjectFilter(s) {
			return r, usagef("--subject %q: want a NATS subject filter such as callbacks.1688.> or callbacks.*.ORDER_CREATE", cell(s, 60))
		}
		r.subjects = append(r.subjects, s)
	}
	return r, nil
}

func (a *app) replayCommand() *cobra.Command {
	var o replayOptions
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Re-deliver stored callbacks from the stream or a JSON Lines file",
		Long: "Re-delivers callbacks either through the receiver's HTTP endpoint (--to receiver,\n" +
			"the default: POST RECEIVER_URL/callbacks/<CALLBACK_TOKEN> with the stored raw bytes, exactly\n" +
			"as the platform sends them) or straight into the stream (--to stream: the original subject,\n" +
			"Nats-Msg-Id and headers, but for the trace: with tracing on it joins this run's, and the one it\n" +
			"came in moves to " + events.HeaderRetryTraceParent + "). The source is the callback stream, read with an ephemeral ordered\n" +
			"consumer bounded by the range and by the stream's last sequence when the replay starts, or\n" +
			"a JSON Lines file (--file) with one platform envelope per line, validated before anything is sent.\n" +
			"Inside the stream's duplicate window a replay --to stream is stored once; the worker's inbox\n" +
			"drops callbacks it already applied either way.",
		Example: "  refundctl replay --since 2h --dry-run\n" +
			"  refundctl replay --seq 42\n" +
			"  refundctl replay --from-seq 120 --to-seq 180 --to stream\n" +
			"  refundctl replay --subject 'callbacks.1688.ORDER_BUYER_VIEW_ORDER_BUYER_REFUND' --since 2026-05-20T00:00:00Z\n" +
			"  refundctl replay --file callbacks.jsonl --to receiver",
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	f.StringVar(&o.since, "since", "", "stored at or after: RFC 3339 time or a duration ago (2h)")
	f.StringVar(&o.until, "until", "", "stored before: RFC 3339 time or a duration ago")
	f.Uint64Var(&o.fromSeq, "from-seq", 0, "first stream sequence")
	f.Uint64Var(&o.toSeq, "to-seq", 0, "last stream sequence (inclusive)")
	f.Uint64Var(&o.seq, "seq", 0, "just this stream sequence")
	f.StringArrayVar(&o.subjects, "subject", nil, "subject filter, e.g. callbacks.1688.> (repeatable)")
	f.BoolVar(&o.all, "all", false, "the whole stream")
	f.StringVar(&o.file, "file", "", "JSON Lines file of platform envelopes instead of the stream")
	f.StringVar(&o.to, "to", "receiver", "receiver (HTTP, as the platform) or stream (JetStream)")
	f.BoolVar(&o.dryRun, "dry-run", false, "show what would be sent; send nothing")
	f.BoolVar(&o.progress, "progress", false, "show a progress bar on stderr even when it is not a terminal")
	f.IntVar(&o.limit, "limit", 0, "at most this many callbacks (0: no limit)")
	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		return a.replay(cmd.Context(), o)
	})
	return cmd
}

// replayer delivers items and collects the results.
type replayer struct {
	a       *app
	opts    replayOptions
	poster  *poster
	js      jetstream.JetStream
	bar     *progressbar.ProgressBar
	results []replayedJSON
	dups    int
}

func (a *app) replay(ctx context.Context, o replayOptions) error {
	r, err := o.validate(a.now())
	if err != nil {
		return err
	}
	rp := &replayer{a: a, opts: o}
	if o.to == "receiver" && !o.dryRun {
		if rp.poster, err = a.newPoster(); err != nil {
			return err
		}
	}
	if o.file != "" {
		parser, err := a.callbackParser()
		if err != nil {
			return err
		}
		fh, err := os.Open(o.file)
		if err != nil {
			return fmt.Errorf("replay file: %w", err)
		}
		recs, err := parseJSONL(fh, parser)
		fh.Close()
		if err != nil {
			return usagef("replay file %s: %s", o.file, errorLine(err))
		}
		if o.limit > 0 && len(recs) > o.limit {
			recs = recs[:o.limit]
		}
		if o.to == "stream" && !o.dryRun {
			nc, js, err := a.connect()
			if err != nil {
				return err
			}
			defer nc.Close()
			rp.js = js
		}
		rp.startBar(int64(len(recs)))
		now := a.now()
		for _, rec := range recs {
			h := events.CallbackHeaders{
				Platform:   rec.Event.Platform.String(),
				Type:       rec.Event.Type,
				Received:   now,
				RequestID:  "refundctl-replay-line-" + strconv.Itoa(rec.Line),
				ParkReason: string(rec.Event.Park),
				ParkDetail: rec.Event.ParkDetail,
			}.Header()
			it := replayItem{Line: rec.Line, Item: replay.Item{Subject: rec.Subject, MsgID: rec.Event.ID, Header: h, Data: rec.Raw}}
			if err := rp.deliver(ctx, it); err != nil {
				return rp.fail(err)
			}
		}
		return rp.finish("file " + o.file)
	}

	nc, js, err := a.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	rp.js = js
	if err := rp.readStream(ctx, r); err != nil {
		return rp.fail(err)
	}
	return rp.finish("stream " + a.cfg.Stream)
}

// readStream delivers the range (see replay.Reader.Read for how the stream
// is read): each message stored before --until, up to --limit of them.
func (rp *replayer) readStream(ctx context.Context, r replayRange) error {
	n := 0
	rr := replay.Range{Subjects: r.subjects, FromSeq: r.fromSeq, Since: r.since, ToSeq: r.toSeq}
	return rp.a.reader(rp.js).Read(ctx, rr, func(m replay.Msg) (bool, error) {
		seq := m.Meta.Sequence.Stream
		if !r.until.IsZero() && !m.Meta.Timestamp.Before(r.until) {
			return false, nil
		}
		if rp.bar == nil {
			total := int64(m.Meta.NumPending) + 1
			if span := int64(m.Last - seq + 1); span < total {
				total = span
			}
			if r.limit > 0 && int64(r.limit) < total {
				total = int64(r.limit)
			}
			rp.startBar(total)
		}
		if err := rp.deliver(ctx, replayItem{Item: m.Item()}); err != nil {
			return false, err
		}
		n++
		return r.limit == 0 || n < r.limit, nil
	})
}

// startBar shows a progress bar on stderr for replays of more than a few
// callbacks when stderr is a terminal, or always with --progress.
func (rp *replayer) startBar(total int64) {
	if rp.bar != nil || total <= 0 {
		return
	}
	show := rp.opts.progress
	if !show && total > 20 {
		if f, ok := rp.a.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			show = true
		}
	}
	if !show {
		return
	}
	desc := "replay"
	if rp.opts.dryRun {
		desc = "replay (dry run)"
	}
	rp.bar = progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(rp.a.stderr),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(rp.a.stderr) }),
	)
}

// deliver sends one item (or records it in a dry run).
func (rp *replayer) deliver(ctx context.Context, it replayItem) error {
	res := replayedJSON{Seq: it.Seq, Line: it.Line, Subject: it.Subject, MsgID: it.MsgID, Bytes: len(it.Data),
		StoredAt: timeJSON(it.Time)}
	where := "seq " + strconv.FormatUint(it.Seq, 10)
	if it.Line > 0 {
		where = "line " + strconv.Itoa(it.Line)
	}
	switch {
	case rp.opts.dryRun:
		res.Body = string(it.Data)
	case rp.opts.to == "receiver":
		ans, err := replay.ToReceiver(ctx, rp.poster, it.Item)
		var refused *replay.RefusedError
		if errors.As(err, &refused) {
			return fmt.Errorf("%s: receiver answered %s", where, postResult{Status: ans.Status, Body: ans.Body})
		}
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		res.Status, res.Response = ans.Status, ans.Body
	default:
		pctx, cancel := context.WithTimeout(ctx, rp.a.cfg.Timeout)
		st, err := replay.ToStream(pctx, rp.js, it.Item)
		cancel()
		if err != nil {
			return fmt.Errorf("%s: %w", where, publishErr(it.Subject, err))
		}
		res.StreamSeq, res.Duplicate = st.Seq, st.Duplicate
		if st.Duplicate {
			rp.dups++
		}
	}
	rp.results = append(rp.results, res)
	if rp.bar != nil {
		_ = rp.bar.Add(1)
	} else if !rp.a.cfg.JSON {
		rp.printItem(res)
	}
	return nil
}

func (rp *replayer) printItem(r replayedJSON) {
	where := fmt.Sprintf("seq %d", r.Seq)
	if r.Line > 0 {
		where = fmt.Sprintf("line %d", r.Line)
	}
	var outcome string
	switch {
	case rp.opts.dryRun:
		outcome = fmt.Sprintf("would send %d bytes to the %s: %s", r.Bytes, rp.opts.to, cell(r.Body, 200))
	case rp.opts.to == "receiver":
		outcome = fmt.Sprintf("receiver %d", r.Status)
	case r.Duplicate:
		outcome = fmt.Sprintf("duplicate of stream seq %d (inside the duplicate window)", r.StreamSeq)
	default:
		outcome = fmt.Sprintf("stored as stream seq %d", r.StreamSeq)
	}
	fmt.Fprintf(rp.a.stdout, "%s\t%s\t%s\t%s\n", where, r.Subject, cell(r.MsgID, 40), outcome)
}

// fail stops the progress bar and reports how far the replay got.
func (rp *replayer) fail(err error) error {
	if rp.bar != nil {
		_ = rp.bar.Exit()
		fmt.Fprintln(rp.a.stderr)
	}
	if len(rp.results) > 0 {
		return fmt.Errorf("%w (%d callbacks re-delivered before the failure)", err, len(rp.results))
	}
	return err
}

func (rp *replayer) finish(source string) error {
	if rp.bar != nil {
		_ = rp.bar.Finish()
	}
	if rp.a.cfg.JSON {
		out := struct {
			Source     string         `json:"source"`
			To         string         `json:"to"`
			DryRun     bool           `json:"dryRun"`
			Count      int            `json:"count"`
			Duplicates int            `json:"duplicates"`
			Items      []replayedJSON `json:"items"`
		}{Source: source, To: rp.opts.to, DryRun: rp.opts.dryRun, Count: len(rp.results), Duplicates: rp.dups, Items: rp.results}
		if out.Items == nil {
			out.Items = []replayedJSON{}
		}
		return writeJSON(rp.a.stdout, out)
	}
	verb := "replayed"
	if rp.opts.dryRun {
		verb = "dry run: would replay"
	}
	dest := "the receiver"
	if rp.opts.to == "stream" {
		dest = "the stream"
	}
	msg := fmt.Sprintf("%s %d callbacks from %s to %s", verb, len(rp.results), source, dest)
	if rp.dups > 0 {
		msg += fmt.Sprintf(" (%d already stored: duplicates)", rp.dups)
	}
	_, err := fmt.Fprintln(rp.a.stdout, msg)
	return err
}

// Post implements replay.Poster: the receiver's answer to body.
func (p *poster) Post(ctx context.Context, body []byte) (replay.Answer, error) {
	r, err := p.post(ctx, body)
	return replay.Answer{Status: r.Status, Body: r.Body}, err
}

// callbackParser parses callbacks with the receiver's type table: the
// profile's, as UPSTREAM_PROFILE overrides it.
func (a *app) callbackParser() (*callback.Parser, error) {
	prof, err := platform.Load(a.cfg.ProfilePath)
	if err != nil {
		return nil, fmt.Errorf("UPSTREAM_PROFILE: %w", err)
	}
	return callback.NewParser(callback.TypeNamesFromProfile(prof))
}
