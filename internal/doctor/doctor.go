// Package doctor checks the platform profile's guesses (internal/platform)
// against a real account, with read-only calls only, and writes the profile
// patch that would make the product match what it saw. It is the engine of
// `refundctl doctor`; docs/first-day.md says how an operator uses it.
//
// Every call goes through apiclient.Client.Probe, which refuses any endpoint
// with a side effect: doctor cannot change anything on the platform, whatever
// it is asked.
package doctor

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/platform"
)

// Platform is the platform doctor checks.
type Platform = platform.ID

// Platforms.
const (
	Taobao  = platform.Taobao
	Alibaba = platform.Alibaba1688
)

// Options say what to check. The ids decide what is observable: a guess
// about a refund's status needs a refund, the list's field names an order.
type Options struct {
	Platform   Platform
	OrderID    string   // Taobao: the list's purchase order; 1688: the order of the reasons lookup (digits)
	SubOrderID string   // Taobao only: the sub-order whose refund form is rendered
	RefundIDs  []string // refunds of the platform: queried (Taobao) or looked up (1688); one per phase shows every status
	// ProfileName names the profile in use (the UPSTREAM_PROFILE file, or ""
	// for the built-in one), for the report.
	ProfileName string
	// Override is that file's content (nil for none). The patch is this file
	// with doctor's changes, so that it replaces it whole.
	Override []byte
}

// MaxRefunds bounds the refunds one run looks at (Options.RefundIDs).
const MaxRefunds = 10

// Status is the verdict on one guess.
type Status string

// Verdicts.
const (
	Confirmed     Status = "confirmed"      // the platform's answers agree with the guess
	Contradicted  Status = "contradicted"   // they disagree: Seen says how
	NotObservable Status = "not_observable" // no answer showed it, with these ids (Detail says what would)
)

// Result is the verdict on the whole run.
type Result string

// Results.
const (
	ResultConfirmed    Result = "confirmed"    // every observable guess was confirmed
	ResultContradicted Result = "contradicted" // at least one guess was contradicted
	ResultUnreachable  Result = "unreachable"  // no call got an answer (network)
	ResultRejected     Result = "rejected"     // the platform refused the credentials themselves
)

// Check is the verdict on one guess. Key is the profile key it concerns
// (wire.* and decode.* name facts the client's code holds, not the profile).
type Check struct {
	Key    string `json:"key"`
	Status Status `json:"status"`
	Guess  string `json:"guess"`
	Seen   string `json:"seen,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Call is one request doctor made, and how it was understood.
type Call struct {
	Endpoint   string `json:"endpoint"`
	Method     string `json:"method"`
	Path       string `json:"path"`
	HTTPStatus int    `json:"httpStatus,omitempty"`
	Code       *int   `json:"code,omitempty"`
	Msg        string `json:"msg,omitempty"`
	RequestID  string `json:"requestId,omitempty"`
	Outcome    string `json:"outcome"`
	Purpose    string `json:"purpose"`
}

// UnknownField is a response field the client's types do not know.
type UnknownField struct {
	Endpoint string `json:"endpoint"`
	Field    string `json:"field"`
	Example  string `json:"example"`
}

// Change is one key the patch sets, and why.
type Change struct {
	Key    string `json:"key"`
	Value  any    `json:"value"`
	Reason string `json:"reason"`
}

// Decision is something the patch cannot set for the operator: a moved
// path, a status that matches no phase. The patch carries it as a comment.
type Decision struct {
	Key        string `json:"key"`
	Note       string `json:"note"`
	Suggestion string `json:"suggestion,omitempty"` // commented TOML to complete and uncomment
}

// Summary counts the checks by verdict.
type Summary struct {
	Confirmed     int `json:"confirmed"`
	Contradicted  int `json:"contradicted"`
	NotObservable int `json:"notObservable"`
}

// IDs are the ids doctor was given.
type IDs struct {
	Order    string   `json:"order,omitempty"`
	SubOrder string   `json:"subOrder,omitempty"`
	Refunds  []string `json:"refunds,omitempty"`
}

// Report is everything one run found. Its JSON form is stable: fields are
// only ever added.
type Report struct {
	Platform      Platform       `json:"platform"`
	BaseURL       string         `json:"baseUrl"`
	Profile       string         `json:"profile"`
	IDs           IDs            `json:"ids"`
	Result        Result         `json:"result"`
	Summary       Summary        `json:"summary"`
	Checks        []Check        `json:"checks"`
	Calls         []Call         `json:"calls"`
	UnknownFields []UnknownField `json:"unknownFields"`
	Changes       []Change       `json:"changes"`
	Decisions     []Decision     `json:"decisions"`
	// Patch is a complete UPSTREAM_PROFILE file: the one in use (if any)
	// with Changes applied, Decisions as comments.
	Patch string `json:"patch"`
	// PatchError is set when the patch does not validate (two changes that
	// contradict each other, say): resolve it by hand.
	PatchError string `json:"patchError,omitempty"`
}

// Run checks the guesses of cfg.Profile against the platform cfg names.
// It returns an error only for options or a configuration it cannot use;
// everything the platform answered, network failures included, is in the
// report.
func Run(ctx context.Context, cfg apiclient.Config, opts Options) (*Report, error) {
	if opts.Platform != Taobao && opts.Platform != Alibaba {
		return nil, fmt.Errorf("platform %q: want taobao or 1688", opts.Platform)
	}
	if opts.Platform == Alibaba && opts.SubOrderID != "" {
		return nil, fmt.Errorf("a sub-order applies to taobao only (1688 refunds are per order)")
	}
	if len(opts.RefundIDs) > MaxRefunds {
		return nil, fmt.Errorf("%d refunds: at most %d", len(opts.RefundIDs), MaxRefunds)
	}
	client, err := apiclient.New(cfg)
	if err != nil {
		return nil, err
	}
	r := &run{cfg: cfg, opts: opts, client: client, prof: client.Profile(), checks: map[string]*checkAgg{},
		amounts: map[string]*amountTally{}, times: map[string]bool{},
		rep: &Report{Platform: opts.Platform, BaseURL: strings.TrimRight(cfg.BaseURL, "/"), Profile: profileLabel(opts.ProfileName),
			IDs: IDs{Order: opts.OrderID, SubOrder: opts.SubOrderID, Refunds: opts.RefundIDs}}}
	r.probe(ctx)
	r.finish()
	return r.rep, nil
}

func profileLabel(name string) string {
	if name == "" {
		return "(built-in)"
	}
	return name
}

// run is the state of one doctor run.
type run struct {
	cfg    apiclient.Config
	opts   Options
	client *apiclient.Client
	prof   *platform.Profile

	calib      *apiclient.ProbeResult // how the platform answers an unknown path
	sigDecided bool                   // the signature verdict is in
	sigWhy     string                 // why it is not, so far
	stopped    bool                   // the credentials were refused: send nothing more
	answered   bool                   // some call got an HTTP response
	rejected   bool                   // the credentials themselves were refused

	checks   map[string]*checkAgg
	order    []string
	statuses []seenStatus
	amounts  map[string]*amountTally // by amounts.<platform> key
	times    map[string]bool         // time fields confirmed, by name
	rep      *Report
}

// checkAgg collects the observations of one guess.
type checkAgg struct {
	key, guess   string
	confirmed    []string
	contradicted []string
	why          string // why it is not observable, until something is seen
	detail       string
}

// expect registers a guess doctor can observe, with what would show it.
func (r *run) expect(key, guess, why string) {
	if _, ok := r.checks[key]; ok {
		return
	}
	r.checks[key] = &checkAgg{key: key, guess: guess, why: why}
	r.order = append(r.order, key)
}

func (r *run) agg(key string) *checkAgg {
	c, ok := r.checks[key]
	if !ok {
		r.expect(key, "", "")
		c = r.checks[key]
	}
	return c
}

// confirm records an observation that agrees with the guess.
func (r *run) confirm(key, seen string) {
	c := r.agg(key)
	if !slices.Contains(c.confirmed, seen) {
		c.confirmed = append(c.confirmed, seen)
	}
}

// contradict records an observation that disagrees with the guess.
func (r *run) contradict(key, seen string) {
	c := r.agg(key)
	if !slices.Contains(c.contradicted, seen) {
		c.contradicted = append(c.contradicted, seen)
	}
}

// unobservable replaces the reason a guess was not seen.
func (r *run) unobservable(key, why string) { r.agg(key).why = why }

// note adds a detail line to a check.
func (r *run) note(key, detail string) {
	c := r.agg(key)
	if c.detail == "" {
		c.detail = detail
	} else if !strings.Contains(c.detail, detail) {
		c.detail += "; " + detail
	}
}

// change adds a key to the patch.
func (r *run) change(key string, value any, reason string) {
	for i, ch := range r.rep.Changes {
		if ch.Key == key {
			if !strings.Contains(ch.Reason, reason) {
				ch.Reason += "; " + reason
			}
			r.rep.Changes[i] = Change{Key: key, Value: value, Reason: ch.Reason}
			return
		}
	}
	r.rep.Changes = append(r.rep.Changes, Change{Key: key, Value: value, Reason: reason})
}

// decide adds something only the operator can settle.
func (r *run) decide(key, note, suggestion string) {
	for _, d := range r.rep.Decisions {
		if d.Key == key && d.Note == note {
			return
		}
	}
	r.rep.Decisions = append(r.rep.Decisions, Decision{Key: key, Note: note, Suggestion: suggestion})
}

// finish turns the observations into checks, the result and the patch.
func (r *run) finish() {
	r.resolveStatuses()
	r.resolveAmounts()
	for _, key := range r.order {
		c := r.checks[key]
		ch := Check{Key: key, Guess: c.guess, Detail: c.detail}
		switch {
		case len(c.contradicted) > 0:
			ch.Status, ch.Seen = Contradicted, joinSeen(c.contradicted)
			r.rep.Summary.Contradicted++
		case len(c.confirmed) > 0:
			ch.Status, ch.Seen = Confirmed, joinSeen(c.confirmed)
			r.rep.Summary.Confirmed++
		default:
			ch.Status = NotObservable
			if ch.Detail == "" {
				ch.Detail = c.why
			} else if c.why != "" {
				ch.Detail = c.why + "; " + ch.Detail
			}
			r.rep.Summary.NotObservable++
		}
		r.rep.Checks = append(r.rep.Checks, ch)
	}
	switch {
	case !r.answered:
		r.rep.Result = ResultUnreachable
	case r.rejected:
		r.rep.Result = ResultRejected
	case r.rep.Summary.Contradicted > 0:
		r.rep.Result = ResultContradicted
	default:
		r.rep.Result = ResultConfirmed
	}
	if r.rep.UnknownFields == nil {
		r.rep.UnknownFields = []UnknownField{}
	}
	if r.rep.Changes == nil {
		r.rep.Changes = []Change{}
	}
	if r.rep.Decisions == nil {
		r.rep.Decisions = []Decision{}
	}
	r.rep.Patch, r.rep.PatchError = buildPatch(r.opts.Override, r.rep)
}

// joinSeen lists up to five observations.
func joinSeen(seen []string) string {
	if len(seen) > 5 {
		return strings.Join(seen[:5], "; ") + fmt.Sprintf("; and %d more", len(seen)-5)
	}
	return strings.Join(seen, "; ")
}
