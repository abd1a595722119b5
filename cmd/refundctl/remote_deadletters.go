package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/deadletters"
)

// The dead letters through the console's API (docs/console.md, "API"):
// its answers come from package deadletters, as on the host, so a letter
// reads the same and is refused for the same reasons in the same words.

// apiDeadLetter is a dead letter as GET /api/v1/dead-letters (no payload)
// and /api/v1/dead-letters/{id} answer it.
type apiDeadLetter struct {
	ID            int64               `json:"id"`
	MsgID         string              `json:"msgId"`
	Subject       string              `json:"subject"`
	Reason        string              `json:"reason"`
	Error         string              `json:"error"`
	Deliveries    int                 `json:"deliveries"`
	CreatedAt     time.Time           `json:"createdAt"`
	RetriedAt     time.Time           `json:"retriedAt"`
	DiscardedAt   time.Time           `json:"discardedAt"`
	DiscardedBy   string              `json:"discardedBy"`
	DiscardNote   string              `json:"discardNote"`
	Headers       map[string][]string `json:"headers"`
	Payload       *string             `json:"payload"`
	PayloadBase64 string              `json:"payloadBase64"`
}

// toDeadLetter is the letter as the store holds it: the payload is the
// text, else the base64's bytes.
func (d apiDeadLetter) toDeadLetter() (casestore.DeadLetter, error) {
	out := casestore.DeadLetter{ID: d.ID, MsgID: d.MsgID, Subject: d.Subject, Reason: d.Reason, Error: d.Error,
		Deliveries: d.Deliveries, Headers: d.Headers, CreatedAt: d.CreatedAt, RetriedAt: d.RetriedAt,
		DiscardedAt: d.DiscardedAt, DiscardedBy: d.DiscardedBy, DiscardNote: d.DiscardNote}
	switch {
	case d.Payload != nil:
		out.Payload = []byte(*d.Payload)
	case d.PayloadBase64 != "":
		b, err := base64.StdEncoding.DecodeString(d.PayloadBase64)
		if err != nil {
			return out, fmt.Errorf("dead letter %d: payloadBase64: %w", d.ID, err)
		}
		out.Payload = b
	}
	return out, nil
}

// deadLetters reads one page of GET /api/v1/dead-letters: the console
// filters as the store does, and its largest page is refundctl's largest
// --limit (casestore.MaxListLimit), so the page is the list.
func (r *remote) deadLetters(ctx context.Context, f deadLetterFilter) ([]casestore.DeadLetter, error) {
	q := url.Values{"limit": {strconv.Itoa(f.limit)}}
	if f.afterID > 0 {
		q.Set("cursor", strconv.FormatInt(f.afterID, 10))
	}
	if f.pendingOnly {
		q.Set("pending", "true")
	}
	switch f.discarded {
	case casestore.DiscardedOnly:
		q.Set("discarded", "true")
	case casestore.DiscardedNot:
		q.Set("discarded", "false")
	}
	if f.reason != "" {
		q.Set("reason", string(f.reason))
	}
	var page struct {
		DeadLetters []apiDeadLetter `json:"deadLetters"`
	}
	if _, err := r.do(ctx, http.MethodGet, "/api/v1/dead-letters?"+q.Encode(), nil, &page); err != nil {
		return nil, err
	}
	out := make([]casestore.DeadLetter, 0, len(page.DeadLetters))
	for _, ad := range page.DeadLetters {
		d, err := ad.toDeadLetter()
		if err != nil {
			return nil, fmt.Errorf("console at %s: %w", r.base, err)
		}
		out = append(out, d)
	}
	return out, nil
}

func (r *remote) deadLetter(ctx context.Context, id int64) (casestore.DeadLetter, error) {
	var ad apiDeadLetter
	if _, err := r.do(ctx, http.MethodGet, deadLetterPath(id, ""), nil, &ad); err != nil {
		return casestore.DeadLetter{}, r.deadLetterErr(ctx, id, err)
	}
	return r.decodeDeadLetter(ad)
}

// retryDeadLetter posts the retry (dryRun for --dry-run); the operator
// recorded in the message (Rh-Retried-By) is the token's account.
func (r *remote) retryDeadLetter(ctx context.Context, id int64, o retryOptions) (casestore.DeadLetter, retried, error) {
	var ans struct {
		apiDeadLetter
		Retry struct {
			MsgID     string              `json:"msgId"`
			Headers   map[string][]string `json:"headers"`
			Stream    string              `json:"stream"`
			Sequence  uint64              `json:"seq"`
			Duplicate bool                `json:"duplicate"`
		} `json:"retry"`
	}
	body := map[string]bool{"force": o.force, "dryRun": o.dryRun}
	if _, err := r.do(ctx, http.MethodPost, deadLetterPath(id, "/retry"), body, &ans); err != nil {
		return casestore.DeadLetter{}, retried{}, r.deadLetterErr(ctx, id, err)
	}
	d, err := r.decodeDeadLetter(ans.apiDeadLetter)
	if err != nil {
		return d, retried{}, err
	}
	a := ans.Retry
	return d, retried{ID: d.ID, Subject: d.Subject, MsgID: a.MsgID, Headers: a.Headers, DryRun: o.dryRun,
		Stream: a.Stream, Sequence: a.Sequence, Duplicate: a.Duplicate}, nil
}

// discardDeadLetter posts the discard; the operator recorded is the
// token's account.
func (r *remote) discardDeadLetter(ctx context.Context, id int64, note string) (casestore.DeadLetter, error) {
	var ad apiDeadLetter
	if _, err := r.do(ctx, http.MethodPost, deadLetterPath(id, "/discard"), map[string]string{"note": note}, &ad); err != nil {
		return casestore.DeadLetter{}, r.deadLetterErr(ctx, id, err)
	}
	return r.decodeDeadLetter(ad)
}

func deadLetterPath(id int64, action string) string {
	return "/api/v1/dead-letters/" + strconv.FormatInt(id, 10) + action
}

func (r *remote) decodeDeadLetter(ad apiDeadLetter) (casestore.DeadLetter, error) {
	d, err := ad.toDeadLetter()
	if err != nil {
		return d, fmt.Errorf("console at %s: %w", r.base, err)
	}
	return d, nil
}

// deadLetterErr words the console's answer about dead letter id as refundctl
// does on the host. A refusal (409) and a missing letter (404) carry
// package deadletters' words as their message, printed alone; a refusal
// exits 4. A permanent failure's refusal names the console's force box,
// so it is worded again, from the letter, with --force.
func (r *remote) deadLetterErr(ctx context.Context, id int64, err error) error {
	var ae *apiError
	if !errors.As(err, &ae) || ae.Message == "" {
		return err
	}
	switch deadletters.Refusal(ae.Code) {
	case deadletters.RefusedRetried, deadletters.RefusedDiscarded:
		return &refusedError{err: consoleWords{ae}}
	case deadletters.RefusedPermanent:
		d, lerr := r.deadLetter(ctx, id)
		if lerr != nil {
			return &refusedError{err: consoleWords{ae}}
		}
		if rerr := deadletters.RefusePermanent(d, "--"+forceFlag); rerr != nil {
			return settleErr(rerr)
		}
		return err
	}
	if ae.Code == "not_found" {
		return consoleWords{ae}
	}
	return err
}

// consoleWords is an API error told by its message alone, when that
// message is what refundctl prints on the host.
type consoleWords struct{ e *apiError }

func (w consoleWords) Error() string { return w.e.Message }
func (w consoleWords) Unwrap() error { return w.e }
