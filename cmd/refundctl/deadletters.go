package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/deadletters"
	"github.com/refundhub/refundhub/internal/events"
)

// deadLetterJSON is the stable JSON form of a dead letter. Payload holds the
// stored bytes as a string when they are UTF-8, else PayloadBase64 holds them.
type deadLetterJSON struct {
	ID            int64               `json:"id"`
	MsgID         string              `json:"msgId"`
	Subject       string              `json:"subject"`
	Reason        string              `json:"reason"`
	Error         string              `json:"error,omitempty"`
	Deliveries    int                 `json:"deliveries"`
	Headers       map[string][]string `json:"headers,omitempty"`
	Payload       *string             `json:"payload,omitempty"`
	PayloadBase64 string              `json:"payloadBase64,omitempty"`
	CreatedAt     string              `json:"createdAt"`
	RetriedAt     string              `json:"retriedAt,omitempty"`
	DiscardedAt   string              `json:"discardedAt,omitempty"`
	DiscardedBy   string              `json:"discardedBy,omitempty"`
	DiscardNote   string              `json:"discardNote,omitempty"`
}

func toDeadLetterJSON(d casestore.DeadLetter, withPayload bool) deadLetterJSON {
	out := deadLetterJSON{ID: d.ID, MsgID: d.MsgID, Subject: d.Subject, Reason: d.Reason, Error: d.Error,
		Deliveries: d.Deliveries, Headers: d.Headers, CreatedAt: timeJSON(d.CreatedAt), RetriedAt: timeJSON(d.RetriedAt),
		DiscardedAt: timeJSON(d.DiscardedAt), DiscardedBy: d.DiscardedBy, DiscardNote: d.DiscardNote}
	if withPayload {
		if utf8.Valid(d.Payload) {
			s := string(d.Payload)
			out.Payload = &s
		} else {
			out.PayloadBase64 = base64.StdEncoding.EncodeToString(d.Payload)
		}
	}
	return out
}

func (a *app) deadLettersCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "dead-letters",
		Aliases: []string{"dl"},
		Short:   "Inspect, retry and discard messages the worker gave up on",
		Long: "A dead letter is pending until it is retried (republished to its original subject)\n" +
			"or discarded (kept for the record, with who discarded it, when and why, and no\n" +
			"longer listed by default). Retrying a permanent failure (" + deadletters.PermanentReasons() + ")\n" +
			"needs --force: unchanged, it fails again. A retried or discarded dead letter is\n" +
			"settled: retrying or discarding it again is refused and changes nothing (exit 4).",
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(a.deadLettersList(), a.deadLettersShow(), a.deadLettersRetry(), a.deadLettersDiscard())
	return cmd
}

// stateHuman says in a table cell whether a dead letter is pending, retried
// or discarded, and when.
func stateHuman(d casestore.DeadLetter) string {
	switch {
	case !d.DiscardedAt.IsZero():
		return "discarded " + timeHuman(d.DiscardedAt)
	case !d.RetriedAt.IsZero():
		return "retried " + timeHuman(d.RetriedAt)
	}
	return "pending"
}

func (a *app) deadLettersList() *cobra.Command {
	var pending, all, discarded bool
	var reason string
	var limit int
	var afterID int64
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List dead letters (not the discarded ones, unless --all or --discarded)",
		Args:  cobra.NoArgs,
	}
	cmd.Flags().BoolVar(&pending, "pending", false, "only dead letters neither retried nor discarded")
	cmd.Flags().BoolVar(&all, "all", false, "discarded dead letters too")
	cmd.Flags().BoolVar(&discarded, "discarded", false, "only discarded dead letters")
	cmd.Flags().StringVar(&reason, "reason", "", "only dead letters with this reason: "+events.DeadReasonList())
	cmd.Flags().IntVar(&limit, "limit", 100, fmt.Sprintf("at most this many (1 to %d)", casestore.MaxListLimit))
	cmd.Flags().Int64Var(&afterID, "after-id", 0, "paging: only ids greater than this")
	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		// The store's (and the console's) largest page: one read either way.
		if limit < 1 || limit > casestore.MaxListLimit {
			return usagef("--limit %d: want 1 to %d", limit, casestore.MaxListLimit)
		}
		if afterID < 0 {
			return usagef("--after-id %d: must not be negative", afterID)
		}
		filter := deadLetterFilter{pendingOnly: pending, discarded: casestore.DiscardedNot, afterID: afterID, limit: limit}
		switch {
		case pending && (all || discarded):
			return usagef("--pending lists dead letters neither retried nor discarded: do not combine it with --all or --discarded")
		case all && discarded:
			return usagef("--all lists discarded dead letters with the others, --discarded only those: give one")
		case all:
			filter.discarded = casestore.DiscardedAny
		case discarded:
			filter.discarded = casestore.DiscardedOnly
		}
		if cmd.Flags().Changed("reason") {
			filter.reason = events.DeadReason(reason)
			if !filter.reason.Valid() {
				return usagef("--reason %q: want one of %s", cell(reason, 40), events.DeadReasonList())
			}
		}
		b, err := a.deadLetterBackend()
		if err != nil {
			return err
		}
		defer b.close()
		dls, err := b.deadLetters(cmd.Context(), filter)
		if err != nil {
			return err
		}
		if a.cfg.JSON {
			out := make([]deadLetterJSON, len(dls))
			for i, d := range dls {
				out[i] = toDeadLetterJSON(d, false)
			}
			return writeJSON(a.stdout, out)
		}
		if len(dls) == 0 {
			_, err := fmt.Fprintln(a.stdout, "no dead letters")
			return err
		}
		tw := newTable(a.stdout)
		fmt.Fprintln(tw, "ID\tCREATED\tSUBJECT\tREASON\tDELIVERIES\tSTATE\tERROR")
		for _, d := range dls {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, timeHuman(d.CreatedAt), cell(d.Subject, 60),
				cell(d.Reason, 32), d.Deliveries, stateHuman(d), cell(d.Error, 80))
		}
		return tw.Flush()
	})
	return cmd
}

func (a *app) deadLettersShow() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show a dead letter with its headers and payload",
		Args:  cobra.ExactArgs(1),
	}
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		id, err := parseID("dead letter id", args[0])
		if err != nil {
			return err
		}
		b, err := a.deadLetterBackend()
		if err != nil {
			return err
		}
		defer b.close()
		d, err := b.deadLetter(cmd.Context(), id)
		if err != nil {
			return err
		}
		if a.cfg.JSON {
			return writeJSON(a.stdout, toDeadLetterJSON(d, true))
		}
		w := a.stdout
		fmt.Fprintf(w, "Dead letter %d\n", d.ID)
		tw := newTable(w)
		fmt.Fprintf(tw, "  Subject:\t%s\n", cell(d.Subject, 200))
		fmt.Fprintf(tw, "  Message id:\t%s\n", cell(d.MsgID, 200))
		fmt.Fprintf(tw, "  Reason:\t%s\n", cell(d.Reason, 200))
		fmt.Fprintf(tw, "  Error:\t%s\n", cell(d.Error, 500))
		fmt.Fprintf(tw, "  Deliveries:\t%d\n", d.Deliveries)
		fmt.Fprintf(tw, "  Created:\t%s\n", timeHuman(d.CreatedAt))
		retried := "no"
		if !d.RetriedAt.IsZero() {
			retried = timeHuman(d.RetriedAt)
		}
		fmt.Fprintf(tw, "  Retried:\t%s\n", retried)
		if d.DiscardedAt.IsZero() {
			fmt.Fprintf(tw, "  Discarded:\tno\n")
		} else {
			fmt.Fprintf(tw, "  Discarded:\t%s by %s\n", timeHuman(d.DiscardedAt), cell(d.DiscardedBy, 200))
			fmt.Fprintf(tw, "  Note:\t%s\n", cell(d.DiscardNote, deadletters.MaxNote))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(d.Headers) > 0 {
			fmt.Fprintln(w, "\nHeaders")
			keys := make([]string, 0, len(d.Headers))
			for k := range d.Headers {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			tw = newTable(w)
			for _, k := range keys {
				fmt.Fprintf(tw, "  %s:\t%s\n", cell(k, 64), cell(strings.Join(d.Headers[k], ", "), 200))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
		fmt.Fprintf(w, "\nPayload (%d bytes)\n", len(d.Payload))
		if utf8.Valid(d.Payload) {
			fmt.Fprintln(w, string(d.Payload))
		} else {
			fmt.Fprintln(w, "base64:"+base64.StdEncoding.EncodeToString(d.Payload))
		}
		return nil
	})
	return cmd
}

// retryOptions are the flags of dead-letters retry.
type retryOptions struct {
	dryRun bool
	force  bool // retry a permanent failure too
}

func (a *app) deadLettersRetry() *cobra.Command {
	var o retryOptions
	cmd := &cobra.Command{
		Use:   "retry ID",
		Short: "Republish a dead letter to its original subject and mark it retried",
		Long: "Republishes the stored payload to the original subject with the original headers\n" +
			"(minus " + events.ServerHeaderPrefix + "*, " + events.DeadHeaderPrefix + "* and " + events.RetryHeaderPrefix + "*), a new Nats-Msg-Id (original id +\n" +
			"\"-retry-\" + random) and " + events.HeaderRetryOf + "/" + events.HeaderRetryOriginalMsgID + "/" + events.HeaderRetryBy + " headers, waits for the\n" +
			"stream's ack, then marks the dead letter retried. The worker's inbox still drops\n" +
			"what it already applied. With tracing on, the message joins this run's trace; the\n" +
			"trace it died in moves to " + events.HeaderRetryTraceParent + ", which the worker's span links to.\n\n" +
			"A permanent failure (" + deadletters.PermanentReasons() + ") fails again when it is retried\n" +
			"unchanged, so it is refused (exit 4) unless --force says the worker changed (a parser\n" +
			"that reads the new type, a fixed bug). A dead letter already retried or discarded is\n" +
			"refused (exit 4), --force or not.",
		Example: "  refundctl dead-letters retry 12 --dry-run\n  refundctl dead-letters retry 12\n  refundctl dead-letters retry 13 --force",
		Args:    cobra.ExactArgs(1),
	}
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "show what would be published; publish nothing")
	cmd.Flags().BoolVar(&o.force, forceFlag, false, "retry a permanent failure ("+deadletters.PermanentReasons()+") too")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		id, err := parseID("dead letter id", args[0])
		if err != nil {
			return err
		}
		return a.retryDeadLetter(cmd.Context(), id, o)
	})
	return cmd
}

// retried is the outcome of dead-letters retry, as --json prints it.
type retried struct {
	ID        int64               `json:"id"`
	Subject   string              `json:"subject"`
	MsgID     string              `json:"msgId"`
	Headers   map[string][]string `json:"headers"`
	DryRun    bool                `json:"dryRun"`
	Stream    string              `json:"stream,omitempty"`
	Sequence  uint64              `json:"seq,omitempty"`
	Duplicate bool                `json:"duplicate,omitempty"`
}

// forceFlag is the name of retry's force flag, which package deadletters'
// refusals name ("--force") whether they come from here or the console.
const forceFlag = "force"

// retryDeadLetter retries dead letter id through the backend and reports
// it.
func (a *app) retryDeadLetter(ctx context.Context, id int64, o retryOptions) error {
	b, err := a.deadLetterBackend()
	if err != nil {
		return err
	}
	defer b.close()
	d, res, err := b.retryDeadLetter(ctx, id, o)
	if err != nil {
		return err
	}
	if a.cfg.JSON {
		return writeJSON(a.stdout, res)
	}
	if o.dryRun {
		_, err = fmt.Fprintf(a.stdout, "would republish dead letter %d to %s with Nats-Msg-Id %s (%d bytes)\n", d.ID, d.Subject, res.MsgID, len(d.Payload))
		return err
	}
	_, err = fmt.Fprintf(a.stdout, "republished dead letter %d to %s (stream %s seq %d, Nats-Msg-Id %s)\n", d.ID, d.Subject, res.Stream, res.Sequence, res.MsgID)
	return err
}

// deadLetters reads the store's dead letters.
func (d *direct) deadLetters(ctx context.Context, f deadLetterFilter) ([]casestore.DeadLetter, error) {
	st, err := d.store(ctx)
	if err != nil {
		return nil, err
	}
	sf := casestore.DeadLetterFilter{PendingOnly: f.pendingOnly, Discarded: f.discarded, AfterID: f.afterID, Limit: f.limit}
	if f.reason != "" {
		sf.Reasons = f.reason.StoredValues()
	}
	return st.DeadLetters(ctx, sf)
}

func (d *direct) deadLetter(ctx context.Context, id int64) (casestore.DeadLetter, error) {
	st, err := d.store(ctx)
	if err != nil {
		return casestore.DeadLetter{}, err
	}
	return deadletters.Load(ctx, st, id)
}

// retryDeadLetter retries through package deadletters (the console's code
// path too) on the store opened for writing, publishing to NATS.
func (d *direct) retryDeadLetter(ctx context.Context, id int64, o retryOptions) (casestore.DeadLetter, retried, error) {
	st, err := d.a.openStoreForWrite(ctx)
	if err != nil {
		return casestore.DeadLetter{}, retried{}, err
	}
	defer st.Close()
	var pub deadletters.Publisher
	if !o.dryRun {
		// Connect only once the dead letter is known to be retried: a
		// refusal needs no NATS.
		lp := &lazyPublisher{a: d.a}
		defer lp.close()
		pub = lp
	}
	settler := deadletters.New(st, pub, deadletters.Config{ForceName: "--" + forceFlag, PublishTimeout: d.a.cfg.Timeout})
	r, err := settler.Retry(ctx, id, deadletters.RetryOptions{Force: o.force, DryRun: o.dryRun, Operator: d.a.cfg.Operator})
	if err != nil {
		return casestore.DeadLetter{}, retried{}, settleErr(err)
	}
	dl := r.DeadLetter
	res := retried{ID: dl.ID, Subject: dl.Subject, MsgID: r.Msg.Header.Get(events.HeaderMsgID), Headers: r.Msg.Header, DryRun: o.dryRun}
	if r.Ack != nil {
		res.Stream, res.Sequence, res.Duplicate = r.Ack.Stream, r.Ack.Sequence, r.Ack.Duplicate
	}
	return dl, res, nil
}

// discardDeadLetter discards through package deadletters (the console's
// code path too) on the store opened for writing; nothing is published.
func (d *direct) discardDeadLetter(ctx context.Context, id int64, note string) (casestore.DeadLetter, error) {
	st, err := d.a.openStoreForWrite(ctx)
	if err != nil {
		return casestore.DeadLetter{}, err
	}
	defer st.Close()
	dl, err := deadletters.New(st, nil, deadletters.Config{ForceName: "--" + forceFlag}).Discard(ctx, id, d.a.cfg.Operator, note)
	if err != nil {
		return casestore.DeadLetter{}, settleErr(err)
	}
	return dl, nil
}

// settleErr gives a Settler's error refundctl's exit status: a refusal
// exits 4, a failed republish says whether a stream takes the subject.
func settleErr(err error) error {
	var refused *deadletters.RefusedError
	var pe *deadletters.PublishError
	var ce *connectError
	switch {
	case errors.As(err, &ce):
		return ce.err
	case errors.As(err, &refused):
		return refusedf("%s", refused.Error())
	case errors.As(err, &pe):
		return publishErr(pe.Subject, pe.Err)
	}
	return err
}

// lazyPublisher connects to NATS on its first publish, with refundctl's
// connection rules (app.connect).
type lazyPublisher struct {
	a  *app
	nc *nats.Conn
	js jetstream.JetStream
}

func (p *lazyPublisher) PublishMsg(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	if p.js == nil {
		nc, js, err := p.a.connect()
		if err != nil {
			return nil, &connectError{err: err}
		}
		p.nc, p.js = nc, js
	}
	return p.js.PublishMsg(ctx, m, opts...)
}

// connectError is a failed connection, reported as app.connect words it
// rather than as a failed publish.
type connectError struct{ err error }

func (e *connectError) Error() string { return e.err.Error() }
func (e *connectError) Unwrap() error { return e.err }

func (p *lazyPublisher) close() {
	if p.nc != nil {
		p.nc.Close()
	}
}

func (a *app) deadLettersDiscard() *cobra.Command {
	var note string
	cmd := &cobra.Command{
		Use:   "discard ID --note TEXT",
		Short: "Mark a dead letter discarded: kept for the record, never retried, no longer listed",
		Long: "Marks a pending dead letter discarded, with the operator (--operator,\n" +
			"REFUNDCTL_OPERATOR, else USER; through the console, REFUNDHUB_URL, the token's\n" +
			"account), the time and --note saying why. The row and its message stay\n" +
			"(dead-letters show, list --all or --discarded); nothing is published.\n" +
			"A discard is final: the dead letter cannot be retried afterwards. A dead letter\n" +
			"already retried or discarded is refused (exit 4) and left as it is.",
		Example: "  refundctl dead-letters discard 12 --note 'test command sent to production by mistake'",
		Args:    cobra.ExactArgs(1),
	}
	cmd.Flags().StringVar(&note, "note", "", fmt.Sprintf("why it is discarded (required, 1 to %d characters)", deadletters.MaxNote))
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		id, err := parseID("dead letter id", args[0])
		if err != nil {
			return err
		}
		note = strings.TrimSpace(note)
		if note == "" {
			return usagef("--note: say why the dead letter is discarded (it is kept with the record)")
		}
		if n := utf8.RuneCountInString(note); n > deadletters.MaxNote {
			return usagef("--note: %d characters; want 1 to %d", n, deadletters.MaxNote)
		}
		return a.discardDeadLetter(cmd.Context(), id, note)
	})
	return cmd
}

// discardDeadLetter marks dead letter id discarded by the operator, with
// note, through the backend, and reports it.
func (a *app) discardDeadLetter(ctx context.Context, id int64, note string) error {
	b, err := a.deadLetterBackend()
	if err != nil {
		return err
	}
	defer b.close()
	d, err := b.discardDeadLetter(ctx, id, note)
	if err != nil {
		return err
	}
	if a.cfg.JSON {
		return writeJSON(a.stdout, toDeadLetterJSON(d, false))
	}
	_, err = fmt.Fprintf(a.stdout, "discarded dead letter %d (%s, %s) at %s by %s: %s\n", d.ID, cell(d.Reason, 32), cell(d.Subject, 60),
		timeHuman(d.DiscardedAt), cell(d.DiscardedBy, 64), cell(d.DiscardNote, deadletters.MaxNote))
	return err
}
