// The outputs of refundctl parked: the table per platform and type, and the
// JSON document.

package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/refundhub/refundhub/internal/platform"
)

// parkedReport writes the outputs of one run.
type parkedReport struct {
	a    *app
	q    parkedQuery
	prof *platform.Profile
	scan parkedScan
}

// window says which part of the stream was read, for messages.
func (r parkedReport) window() string {
	s := "in stream " + r.a.cfg.Stream
	if r.q.platform != "" {
		s = "on " + r.q.platform + " " + s
	}
	if !r.q.since.IsZero() {
		s += " since " + timeHuman(r.q.since) + " UTC"
	}
	return s
}

// capNote says where the scan stopped, when --max-scan stopped it.
func (r parkedReport) capNote() string {
	if !r.scan.capReached {
		return ""
	}
	return fmt.Sprintf("scan stopped at --max-scan %d: parked callbacks stored after %s UTC (seq %d) were not read; narrow --since or raise --max-scan",
		r.q.maxScan, timeHuman(r.scan.lastAt), r.scan.lastSeq)
}

func reasonsCell(t *parkedType) string {
	var parts []string
	for _, r := range t.reasons {
		name := r.reason
		if name == "" {
			name = "(none)"
		}
		if len(t.reasons) > 1 {
			name += fmt.Sprintf("×%d", r.count)
		}
		parts = append(parts, name)
	}
	return strings.Join(parts, ", ")
}

func (r parkedReport) writeTable() error {
	w := r.a.stdout
	if len(r.scan.types) == 0 {
		_, err := fmt.Fprintf(w, "no parked callbacks %s (%d read)\n", r.window(), r.scan.scanned)
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "PLATFORM\tTYPE\tCOUNT\tFIRST (UTC)\tLAST (UTC)\tREASONS\tEXAMPLE (latest body)")
	for _, t := range r.scan.types {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", cell(t.platform, 10), cell(t.typ, 48), t.count,
			timeHuman(t.first), timeHuman(t.last), cell(reasonsCell(t), 60), cell(t.example, parkedExampleCells))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%d parked callbacks read %s; %d types. Example bodies are clipped to %d characters: --json shows them whole.\n",
		r.scan.scanned, r.window(), len(r.scan.types), parkedExampleCells)
	if note := r.capNote(); note != "" {
		fmt.Fprintln(w, note)
	}
	return nil
}

// parkedJSON is the --json output. Every key is always present except
// profileLines, which only --profile-lines adds.
type parkedJSON struct {
	Stream         string           `json:"stream"`
	Platform       string           `json:"platform"` // "" both
	Since          string           `json:"since"`    // "" the whole stream
	MaxScan        int              `json:"maxScan"`
	Scanned        int              `json:"scanned"`
	CapReached     bool             `json:"capReached"`
	ScannedThrough string           `json:"scannedThrough"` // stored time of the last message read
	Types          []parkedTypeJSON `json:"types"`
	ProfileLines   *string          `json:"profileLines,omitempty"`
}

type parkedTypeJSON struct {
	Platform      string             `json:"platform"`
	Type          string             `json:"type"`
	Count         int                `json:"count"`
	FirstSeen     string             `json:"firstSeen"`
	LastSeen      string             `json:"lastSeen"`
	Reasons       []parkedReasonJSON `json:"reasons"`
	ProfileKind   string             `json:"profileKind"`   // the kind the loaded profile gives the type; "" unknown to it
	SuggestedKind string             `json:"suggestedKind"` // "refund" when every body carries refundId, else ""
	Fields        []string           `json:"fields"`        // top-level body fields, in order of first appearance
	MoreFields    int                `json:"moreFields"`    // distinct fields beyond the first 100, not listed
	Unreadable    int                `json:"unreadable"`    // payloads that are not an envelope with an object body
	Example       parkedExampleJSON  `json:"example"`
}

type parkedReasonJSON struct {
	Reason string `json:"reason"`
	Count  int    `json:"count"`
	Detail string `json:"detail"` // the latest message's Cb-Park-Detail
}

type parkedExampleJSON struct {
	Seq      uint64          `json:"seq"`
	StoredAt string          `json:"storedAt"`
	Body     json.RawMessage `json:"body"` // the messageBody as JSON, whole
}

func (r parkedReport) writeJSON(withLines bool, lines string) error {
	out := parkedJSON{Stream: r.a.cfg.Stream, Platform: r.q.platform, Since: timeJSON(r.q.since), MaxScan: r.q.maxScan,
		Scanned: r.scan.scanned, CapReached: r.scan.capReached, ScannedThrough: timeJSON(r.scan.lastAt),
		Types: []parkedTypeJSON{}}
	if withLines {
		out.ProfileLines = &lines
	}
	for _, t := range r.scan.types {
		tj := parkedTypeJSON{Platform: t.platform, Type: t.typ, Count: t.count, FirstSeen: timeJSON(t.first),
			LastSeen: timeJSON(t.last), Reasons: []parkedReasonJSON{}, ProfileKind: string(r.profileKind(t)),
			SuggestedKind: string(t.suggestedKind()), Fields: append([]string{}, t.fields...), MoreFields: t.moreFields,
			Unreadable: t.unreadable,
			Example:    parkedExampleJSON{Seq: t.exampleSeq, StoredAt: timeJSON(t.exampleAt), Body: rawJSON(t.example)}}
		if tj.Example.Body == nil {
			tj.Example.Body = json.RawMessage(`""`)
		}
		for _, x := range t.reasons {
			tj.Reasons = append(tj.Reasons, parkedReasonJSON{Reason: x.reason, Count: x.count, Detail: x.detail})
		}
		out.Types = append(out.Types, tj)
	}
	return writeJSON(r.a.stdout, out)
}
