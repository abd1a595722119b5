package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/refundhub/refundhub/internal/callback"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/platform"
)

// parkedOptions are the flags of `refundctl parked`.
type parkedOptions struct {
	since        string
	platform     string
	types        []string
	maxScan      int
	profileLines bool
	kind         string
}

// Bounds of --max-scan. The default reads a week of parked traffic at a few
// hundred a day in well under a second; the ceiling keeps one run's memory
// bounded (one example body per type, and no more types than messages).
const (
	defaultParkedMaxScan = 10000
	maxParkedMaxScan     = 1000000
)

// parkedExampleCells is how much of an example body the table shows.
const parkedExampleCells = 100

// maxParkedFields bounds the field names kept per type: real bodies have a
// dozen; a body with thousands of keys must not make the output unusable.
const maxParkedFields = 100

// parkedQuery is the validated selection.
type parkedQuery struct {
	since    time.Time
	platform string // "" both
	types    map[string]bool
	maxScan  int
	kind     platform.Kind // "" none given
}

func (o parkedOptions) validate(now time.Time) (parkedQuery, error) {
	q := parkedQuery{maxScan: o.maxScan}
	if o.maxScan < 1 || o.maxScan > maxParkedMaxScan {
		return q, usagef("--max-scan %d: want 1 to %d", o.maxScan, maxParkedMaxScan)
	}
	var err error
	if q.since, err = parseWhen("since", o.since, now); err != nil {
		return q, err
	}
	if q.since.After(now) {
		return q, usagef("--since %s is in the future", q.since.UTC().Format(time.RFC3339))
	}
	if o.platform != "" {
		if _, ok := callbackPlatform(o.platform); !ok {
			return q, usagef("--platform %q: want taobao or 1688", cell(o.platform, 40))
		}
		q.platform = o.platform
	}
	for _, t := range o.types {
		if t == "" {
			return q, usagef("--type: the message type must not be empty")
		}
		if q.types == nil {
			q.types = map[string]bool{}
		}
		q.types[t] = true
	}
	if o.kind != "" {
		if !o.profileLines {
			return q, usagef("--kind %s: only with --profile-lines (it is the kind written for types whose kind the bodies do not show)", cell(o.kind, 40))
		}
		if !slices.Contains(platform.Kinds(), platform.Kind(o.kind)) {
			return q, usagef("--kind %q: want one of %s", cell(o.kind, 40), kindList())
		}
		q.kind = platform.Kind(o.kind)
	}
	return q, nil
}

func kindList() string {
	var s []string
	for _, k := range platform.Kinds() {
		s = append(s, string(k))
	}
	return strings.Join(s, ", ")
}

// callbackPlatform maps the platform name of subjects and headers
// (callback.Platform.String) to the platform.
func callbackPlatform(name string) (callback.Platform, bool) {
	for _, p := range []callback.Platform{callback.PlatformTaobao, callback.Platform1688} {
		if p.String() == name {
			return p, true
		}
	}
	return 0, false
}

// profileTable is the profile's table of a platform's callbacks
// (platform.CallbackFacts): 1688's is "alibaba", as everywhere in the profile.
func profileTable(p callback.Platform) string {
	if p == callback.PlatformTaobao {
		return "callbacks.taobao"
	}
	return "callbacks.alibaba"
}

func (a *app) parkedCommand() *cobra.Command {
	o := parkedOptions{maxScan: defaultParkedMaxScan}
	cmd := &cobra.Command{
		Use:   "parked",
		Short: "List the parked callback types (unknown types, bodies that failed checks); print profile lines for them",
		Long: "Reads the parked callbacks (subjects " + events.SubjectParked + ".>) of the callback stream without\n" +
			"consuming or changing them (an ephemeral ordered consumer, oldest first, up to --max-scan\n" +
			"messages and no further than the stream's end when the read starts) and lists each distinct\n" +
			"message type per platform: how many, first and last stored, the park reasons and the latest\n" +
			"body as an example (clipped in the table; whole with --json).\n\n" +
			"--profile-lines prints instead the platform profile lines (TOML) that make each parked\n" +
			"unknown type known, ready to paste into the file named by UPSTREAM_PROFILE: a types entry and\n" +
			"the fields list of its kind with the body's field names added. The kind is \"refund\" when every\n" +
			"body carries refundId; otherwise order_status or price_modify is for the operator to pick, and\n" +
			"the line is left commented: give it with --kind (and --type to choose per type).",
		Example: "  refundctl parked\n" +
			"  refundctl parked --since 24h --platform taobao --json\n" +
			"  refundctl parked --profile-lines > parked.toml   # review, then merge into the UPSTREAM_PROFILE file\n" +
			"  refundctl parked --profile-lines --type TB_TRADE_CHANGED --kind order_status",
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	f.StringVar(&o.since, "since", "", "stored at or after: RFC 3339 time or a duration ago (24h); default the whole stream")
	f.StringVar(&o.platform, "platform", "", "only this platform: taobao or 1688")
	f.StringArrayVar(&o.types, "type", nil, "only this message type (repeatable)")
	f.IntVar(&o.maxScan, "max-scan", o.maxScan, fmt.Sprintf("read at most this many parked callbacks (1 to %d); the output says when it stopped there", maxParkedMaxScan))
	f.BoolVar(&o.profileLines, "profile-lines", false, "print the profile lines that make the parked unknown types known")
	f.StringVar(&o.kind, "kind", "", "with --profile-lines: the kind for types whose bodies do not show it ("+kindList()+")")
	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		return a.parked(cmd.Context(), o)
	})
	return cmd
}

// parkedType is what one run learnt about one parked message type.
type parkedType struct {
	platform    string
	typ         string
	count       int
	first, last time.Time
	reasons     []*parkedReason // in order of first appearance
	fields      []string        // top-level body fields, in order of first appearance
	fieldSet    map[string]bool
	moreFields  int  // distinct fields beyond maxParkedFields
	unreadable  int  // messages whose payload is not an envelope with an object body
	allRefundID bool // every body carries refundId
	exampleSeq  uint64
	exampleAt   time.Time
	example     string // the latest messageBody (or payload, when not an envelope)
}

type parkedReason struct {
	reason string
	count  int
	detail string // the latest
}

// parkedScan is the result of reading the stream.
type parkedScan struct {
	scanned    int
	capReached bool
	lastSeq    uint64    // of the last message read
	lastAt     time.Time // its stored time
	types      []*parkedType
}

// refundIDField is the body field that marks a refund message (the
// platform's documentation shows it in every refund push; the profile lists
// it first under fields.refund).
const refundIDField = "refundId"

func (a *app) parked(ctx context.Context, o parkedOptions) error {
	q, err := o.validate(a.now())
	if err != nil {
		return err
	}
	prof, err := platform.Load(a.cfg.ProfilePath)
	if err != nil {
		return err
	}
	nc, js, err := a.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	filter := events.SubjectParked + ".>"
	if q.platform != "" {
		filter = events.ParkedSubject(q.platform)
	}
	// Only the body's text is wanted; with no known types every envelope
	// parses down to it.
	parser, err := callback.NewParser(callback.TypeNames{})
	if err != nil {
		return err
	}
	var scan parkedScan
	byKey := map[[2]string]*parkedType{}
	err = a.readStream(ctx, js, streamRange{subjects: []string{filter}, since: q.since}, func(m streamMsg) (bool, error) {
		scan.scanned++
		scan.lastSeq, scan.lastAt = m.meta.Sequence.Stream, m.meta.Timestamp
		if scan.scanned >= q.maxScan {
			scan.capReached = m.meta.NumPending > 0 && m.meta.Sequence.Stream < m.last
		}
		more := scan.scanned < q.maxScan
		h := m.msg.Headers()
		ev, perr := parser.Parse(m.msg.Data())
		plat := h.Get(events.HeaderPlatform)
		if plat == "" {
			plat = strings.TrimPrefix(m.msg.Subject(), events.SubjectParked+".")
		}
		typ := h.Get(events.HeaderType)
		if typ == "" && perr == nil {
			typ = ev.Type
		}
		if q.types != nil && !q.types[typ] {
			return more, nil
		}
		key := [2]string{plat, typ}
		t := byKey[key]
		if t == nil {
			t = &parkedType{platform: plat, typ: typ, first: m.meta.Timestamp, fieldSet: map[string]bool{}, allRefundID: true}
			byKey[key] = t
			scan.types = append(scan.types, t)
		}
		t.add(m, h.Get(events.HeaderParkReason), h.Get(events.HeaderParkDetail), ev, perr)
		return more, nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(scan.types, func(x, y *parkedType) int {
		if c := strings.Compare(platformOrder(x.platform), platformOrder(y.platform)); c != 0 {
			return c
		}
		return strings.Compare(x.typ, y.typ)
	})
	rep := parkedReport{a: a, q: q, prof: prof, scan: scan}
	var lines string
	if o.profileLines {
		lines = rep.profileLines()
	}
	switch {
	case a.cfg.JSON:
		return rep.writeJSON(o.profileLines, lines)
	case o.profileLines:
		_, err := io.WriteString(a.stdout, lines)
		return err
	default:
		return rep.writeTable()
	}
}

// platformOrder sorts Taobao first, then 1688, then anything else.
func platformOrder(name string) string {
	switch p, ok := callbackPlatform(name); {
	case ok && p == callback.PlatformTaobao:
		return "0"
	case ok:
		return "1"
	default:
		return "2" + name
	}
}

// add counts one message of the type.
func (t *parkedType) add(m streamMsg, reason, detail string, ev callback.Event, perr error) {
	t.count++
	t.last = m.meta.Timestamp
	var r *parkedReason
	for _, x := range t.reasons {
		if x.reason == reason {
			r = x
		}
	}
	if r == nil {
		r = &parkedReason{reason: reason}
		t.reasons = append(t.reasons, r)
	}
	r.count++
	r.detail = detail
	t.exampleSeq, t.exampleAt = m.meta.Sequence.Stream, m.meta.Timestamp
	if perr != nil {
		// Not an envelope (stored by hand, or by another writer): the
		// payload is the example, and it says nothing about fields.
		t.unreadable++
		t.allRefundID = false
		t.example = string(m.msg.Data())
		return
	}
	t.example = ev.Body
	keys, err := objectKeys(ev.Body)
	if err != nil {
		t.unreadable++
		t.allRefundID = false
		return
	}
	if !slices.Contains(keys, refundIDField) {
		t.allRefundID = false
	}
	for _, k := range keys {
		if t.fieldSet[k] {
			continue
		}
		if len(t.fields) >= maxParkedFields {
			t.moreFields++
			t.fieldSet[k] = true
			continue
		}
		t.fieldSet[k] = true
		t.fields = append(t.fields, k)
	}
}

// objectKeys returns the top-level keys of a JSON object, in order, once each.
func objectKeys(doc string) ([]string, error) {
	dec := json.NewDecoder(strings.NewReader(doc))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		k, _ := tok.(string)
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, err
		}
	}
	return keys, nil
}
