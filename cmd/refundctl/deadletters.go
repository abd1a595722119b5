package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/refundhub/refundhub/internal/casestore"
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
}

func toDeadLetterJSON(d casestore.DeadLetter, withPayload bool) deadLetterJSON {
	out := deadLetterJSON{ID: d.ID, MsgID: d.MsgID, Subject: d.Subject, Reason: d.Reason, Error: d.Error,
		Deliveries: d.Deliveries, Headers: d.Headers, CreatedAt: timeJSON(d.CreatedAt), RetriedAt: timeJSON(d.RetriedAt)}
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
		Short:   "Inspect and retry messages the worker gave up on",
		Args:    cobra.NoArgs,
	}
	cmd.AddCommand(a.deadLettersList(), a.deadLettersShow(), a.deadLettersRetry())
	return cmd
}

func (a *app) deadLettersList() *cobra.Command {
	var pending bool
	var reason string
	var limit int
	var afterID int64
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List dead letters",
		Args:  cobra.NoArgs,
	}
	cmd.Flags().BoolVar(&pending, "pending", false, "only dead letters not yet retried")
	cmd.Flags().StringVar(&reason, "reason", "", "only dead letters with this reason: "+events.DeadReasonList())
	cmd.Flags().IntVar(&limit, "limit", 100, "at most this many (1 to 1000)")
	cmd.Flags().Int64Var(&afterID, "after-id", 0, "paging: only ids greater than this")
	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		if limit < 1 || limit > 1000 {
			return usagef("--limit %d: want 1 to 1000", limit)
		}
		if afterID < 0 {
			return usagef("--after-id %d: must not be negative", afterID)
		}
		filter := casestore.DeadLetterFilter{PendingOnly: pending, AfterID: afterID, Limit: limit}
		if cmd.Flags().Changed("reason") {
			r := events.DeadReason(reason)
			if !r.Valid() {
				return usagef("--reason %q: want one of %s", cell(reason, 40), events.DeadReasonList())
			}
			filter.Reasons = r.StoredValues()
		}
		st, err := a.openStore(cmd.Context())
		if err != nil {
			return err
		}
		defer st.Close()
		dls, err := st.DeadLetters(cmd.Context(), filter)
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
		fmt.Fprintln(tw, "ID\tCREATED\tSUBJECT\tREASON\tDELIVERIES\tRETRIED\tERROR")
		for _, d := range dls {
			retried := "no"
			if !d.RetriedAt.IsZero() {
				retried = timeHuman(d.RetriedAt)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, timeHuman(d.CreatedAt), cell(d.Subject, 60),
				cell(d.Reason, 32), d.Deliveries, retried, cell(d.Error, 80))
		}
		return tw.Flush()
	})
	return cmd
}

func (a *app) loadDeadLetter(ctx context.Context, st *casestore.Store, arg string) (casestore.DeadLetter, error) {
	id, err := parseID("dead letter id", arg)
	if err != nil {
		return casestore.DeadLetter{}, err
	}
	d, err := st.DeadLetter(ctx, id)
	if errors.Is(err, casestore.ErrNotFound) {
		return casestore.DeadLetter{}, fmt.Errorf("dead letter %d not found", id)
	}
	return d, err
}

func (a *app) deadLettersShow() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show a dead letter with its headers and payload",
		Args:  cobra.ExactArgs(1),
	}
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		if _, err := parseID("dead letter id", args[0]); err != nil {
			return err
		}
		st, err := a.openStore(cmd.Context())
		if err != nil {
			return err
		}
		defer st.Close()
		d, err := a.loadDeadLetter(cmd.Context(), st, args[0])
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

func (a *app) deadLettersRetry() *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "retry ID",
		Short: "Republish a dead letter to its original subject and mark it retried",
		Long: "Republishes the stored payload to the original subject with the original headers\n" +
			"(minus " + events.ServerHeaderPrefix + "*, " + events.DeadHeaderPrefix + "* and " + events.RetryHeaderPrefix + "*), a new Nats-Msg-Id (original id +\n" +
			"\"-retry-\" + random) and " + events.HeaderRetryOf + "/" + events.HeaderRetryOriginalMsgID + " headers, waits for the\n" +
			"stream's ack, then marks the dead letter retried. The worker's inbox still drops\n" +
			"what it already applied.",
		Args: cobra.ExactArgs(1),
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "show what would be published; publish nothing")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		if _, err := parseID("dead letter id", args[0]); err != nil {
			return err
		}
		ctx := cmd.Context()
		st, err := a.openStoreForWrite(ctx)
		if err != nil {
			return err
		}
		defer st.Close()
		d, err := a.loadDeadLetter(ctx, st, args[0])
		if err != nil {
			return err
		}
		if !d.RetriedAt.IsZero() {
			return fmt.Errorf("dead letter %d was already retried at %s", d.ID, timeHuman(d.RetriedAt))
		}
		if d.Subject == "" {
			return fmt.Errorf("dead letter %d has no subject to republish to", d.ID)
		}
		m, err := events.RetryMsg(events.StoredDeadLetter{ID: d.ID, MsgID: d.MsgID, Subject: d.Subject, Header: d.Headers, Data: d.Payload})
		if err != nil {
			return err
		}
		msgID := m.Header.Get(events.HeaderMsgID)
		type result struct {
			ID        int64               `json:"id"`
			Subject   string              `json:"subject"`
			MsgID     string              `json:"msgId"`
			Headers   map[string][]string `json:"headers"`
			DryRun    bool                `json:"dryRun"`
			Stream    string              `json:"stream,omitempty"`
			Sequence  uint64              `json:"seq,omitempty"`
			Duplicate bool                `json:"duplicate,omitempty"`
		}
		res := result{ID: d.ID, Subject: d.Subject, MsgID: msgID, Headers: m.Header, DryRun: dryRun}
		if !dryRun {
			nc, js, err := a.connect()
			if err != nil {
				return err
			}
			defer nc.Close()
			pctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
			defer cancel()
			ack, err := js.PublishMsg(pctx, m)
			if err != nil {
				return publishErr(d.Subject, err)
			}
			res.Stream, res.Sequence, res.Duplicate = ack.Stream, ack.Sequence, ack.Duplicate
			err = st.Update(ctx, func(tx *casestore.Tx) error { return tx.MarkDeadLetterRetried(ctx, d.ID) })
			if err != nil {
				return fmt.Errorf("dead letter %d republished (%s seq %d) but not marked retried: %w", d.ID, ack.Stream, ack.Sequence, err)
			}
		}
		if a.cfg.JSON {
			return writeJSON(a.stdout, res)
		}
		if dryRun {
			_, err = fmt.Fprintf(a.stdout, "would republish dead letter %d to %s with Nats-Msg-Id %s (%d bytes)\n", d.ID, d.Subject, msgID, len(d.Payload))
			return err
		}
		_, err = fmt.Fprintf(a.stdout, "republished dead letter %d to %s (stream %s seq %d, Nats-Msg-Id %s)\n", d.ID, d.Subject, res.Stream, res.Sequence, msgID)
		return err
	})
	return cmd
}
