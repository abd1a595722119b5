package deadletters

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
)

// State selects dead letters by what became of them.
type State string

// The states a filter selects.
const (
	StatePending   State = "pending"   // neither retried nor discarded
	StateDiscarded State = "discarded" // discarded
	StateAll       State = "all"       // any
)

// Filter selects dead letters for a grouped view or a bulk action. Zero
// fields do not filter, but for State, whose zero is pending.
type Filter struct {
	State   State
	Reason  events.DeadReason // one of events.DeadReasons
	Code    string            // the platform's code in the error (apiclient.ErrorCodeIn); NoCode: none
	Subject string            // a NATS subject filter (events.ValidSubjectFilter)
}

// NoCode is the Filter.Code of dead letters whose error names no platform
// code: "" already means any code.
const NoCode = "none"

// Check returns the filter with State defaulted, or an error naming the
// field that is wrong ("state", "reason", "code" or "subject").
func (f Filter) Check() (Filter, error) {
	switch f.State {
	case "":
		f.State = StatePending
	case StatePending, StateDiscarded, StateAll:
	default:
		return f, fmt.Errorf("state: pending, discarded or all")
	}
	if f.Reason != "" && !f.Reason.Valid() {
		return f, fmt.Errorf("reason: one of %s", events.DeadReasonList())
	}
	if len(f.Code) > 64 {
		return f, fmt.Errorf("code: at most 64 characters")
	}
	if f.Subject != "" && !events.ValidSubjectFilter(f.Subject) {
		return f, fmt.Errorf("subject: a NATS subject filter such as callbacks.1688.> or commands.*.cancel.>")
	}
	return f, nil
}

// MaxScan bounds how many dead letters one grouped view or bulk action
// reads: a backlog beyond it is shown as truncated, and acted on in parts.
const MaxScan = 10000

// CodeOf is the platform's error code a dead letter's error names ("" for
// none): what it is grouped by beside its reason.
func CodeOf(d casestore.DeadLetter) string { return apiclient.ErrorCodeIn(d.Error) }

func (f Filter) matches(d casestore.DeadLetter) bool {
	if f.Code != "" {
		code := CodeOf(d)
		if (f.Code == NoCode && code != "") || (f.Code != NoCode && code != f.Code) {
			return false
		}
	}
	return f.Subject == "" || events.SubjectMatches(f.Subject, d.Subject)
}

// Matching returns the dead letters f selects, oldest first, and whether
// there were more than MaxScan to read. f must have passed Check.
func Matching(ctx context.Context, st *casestore.Store, f Filter) (out []casestore.DeadLetter, truncated bool, err error) {
	sf := casestore.DeadLetterFilter{Limit: casestore.MaxListLimit}
	switch f.State {
	case StatePending, "":
		sf.PendingOnly = true
	case StateDiscarded:
		sf.Discarded = casestore.DiscardedOnly
	}
	if f.Reason != "" {
		sf.Reasons = f.Reason.StoredValues()
	}
	for scanned := 0; ; {
		page, err := st.DeadLetters(ctx, sf)
		if err != nil {
			return nil, false, err
		}
		for _, d := range page {
			if scanned == MaxScan {
				return out, true, nil
			}
			scanned++
			if f.matches(d) {
				out = append(out, d)
			}
		}
		if len(page) < sf.Limit {
			return out, false, nil
		}
		sf.AfterID = page[len(page)-1].ID
	}
}

// Group is the dead letters of one reason and one platform error code, as
// an incident: how many, since when, until when, and the cases they touch.
type Group struct {
	Reason    events.DeadReason
	Code      string // "" when the errors name no platform code
	Count     int
	FirstSeen time.Time
	LastSeen  time.Time
	// Permanent: retrying the group needs force (DeadReason.Permanent).
	Permanent bool
	IDs       []int64  // ascending
	Cases     []int64  // the cases the letters' commands name, ascending
	Subjects  []string // distinct, sorted; a command's case token made '*' (events.CommandSubjectOfAnyCase)
	Error     string   // the newest letter's error, as an example
}

// Groups groups the dead letters f selects by reason and error code, the
// newest group first, and says whether the scan was truncated (MaxScan).
func Groups(ctx context.Context, st *casestore.Store, f Filter) ([]Group, bool, error) {
	dls, truncated, err := Matching(ctx, st, f)
	if err != nil {
		return nil, false, err
	}
	type key struct {
		reason events.DeadReason
		code   string
	}
	byKey := map[key]*Group{}
	var order []*Group
	for _, d := range dls {
		k := key{events.StoredDeadReason(d.Reason), CodeOf(d)}
		g := byKey[k]
		if g == nil {
			g = &Group{Reason: k.reason, Code: k.code, Permanent: k.reason.Permanent(), FirstSeen: d.CreatedAt}
			byKey[k] = g
			order = append(order, g)
		}
		g.Count++
		g.IDs = append(g.IDs, d.ID)
		if d.CreatedAt.Before(g.FirstSeen) {
			g.FirstSeen = d.CreatedAt
		}
		if !d.CreatedAt.Before(g.LastSeen) {
			g.LastSeen, g.Error = d.CreatedAt, d.Error
		}
		// A command's subject names its case: one line per kind, not per case.
		if subj := events.CommandSubjectOfAnyCase(d.Subject); !slices.Contains(g.Subjects, subj) {
			g.Subjects = append(g.Subjects, subj)
		}
		c, err := CaseOf(ctx, st, d)
		if err != nil {
			return nil, false, err
		}
		if c > 0 && !slices.Contains(g.Cases, c) {
			g.Cases = append(g.Cases, c)
		}
	}
	out := make([]Group, len(order))
	for i, g := range order {
		slices.Sort(g.Cases)
		sort.Strings(g.Subjects)
		out[i] = *g
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].LastSeen.After(out[j].LastSeen) })
	return out, truncated, nil
}

// CaseOf returns the case a dead letter concerns, 0 when it names none: a
// command's case id, else the case its verdict was given on or the case it
// opened. A callback names an order, not a case: 0.
func CaseOf(ctx context.Context, st *casestore.Store, d casestore.DeadLetter) (int64, error) {
	var c struct {
		ID     string `json:"id"`
		Kind   string `json:"kind"`
		CaseID int64  `json:"caseId"`
	}
	if json.Unmarshal(d.Payload, &c) != nil || c.ID == "" || c.Kind == "" {
		return 0, nil
	}
	if c.CaseID > 0 {
		return c.CaseID, nil
	}
	o, err := st.CommandOutcome(ctx, c.ID)
	switch {
	case err == nil && o.CaseID > 0:
		return o.CaseID, nil
	case err != nil && !errors.Is(err, casestore.ErrNotFound):
		return 0, err
	}
	k, err := st.CaseOpenedBy(ctx, c.ID)
	switch {
	case err == nil:
		return k.ID, nil
	case errors.Is(err, casestore.ErrNotFound):
		return 0, nil
	}
	return 0, err
}
