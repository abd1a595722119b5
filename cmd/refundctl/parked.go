package main

import (
	"bytes"
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

// profileKind is the kind the loaded profile gives the type, "" when it
// does not know it (or the platform is not one of the two).
func (r parkedReport) profileKind(t *parkedType) platform.Kind {
	p, ok := callbackPlatform(t.platform)
	if !ok {
		return ""
	}
	k, _ := r.prof.CallbackKind(p == callback.PlatformTaobao, t.typ)
	return k
}

// suggestedKind is the kind the bodies show: refund when every one carries
// refundId. Nothing tells order_status from price_modify (both bodies carry
// the same order fields), so those are for the operator.
func (t *parkedType) suggestedKind() platform.Kind {
	if t.allRefundID && t.count > t.unreadable {
		return platform.KindRefund
	}
	return ""
}

// unknownType reports whether the receiver parked the type as unknown.
func (t *parkedType) unknownType() bool {
	for _, r := range t.reasons {
		if r.reason == string(callback.ParkUnknownType) {
			return true
		}
	}
	return false
}

// seenLine is the comment that starts each type's entry.
func (t *parkedType) seenLine() string {
	return fmt.Sprintf("# %s: %d parked (%s), first %s UTC, last %s UTC", cell(t.typ, 0), t.count, cell(reasonsCell(t), 0),
		timeHuman(t.first), timeHuman(t.last))
}

// profileLines builds the TOML for --profile-lines: per platform a types
// table with one entry per parked unknown type whose kind is known (from the
// bodies or --kind), and a fields table whose lists hold the profile's
// fields plus the new ones, since a list in UPSTREAM_PROFILE replaces the
// built-in one whole. Everything else is a comment.
func (r parkedReport) profileLines() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Platform profile lines for the parked callback types: %d parked callbacks read %s.\n", r.scan.scanned, r.window())
	b.WriteString("# Paste into the file named by UPSTREAM_PROFILE (merge the keys into a table of the same name if the\n")
	b.WriteString("# file has one) and restart the receiver and the worker. A fields list replaces the profile's list\n")
	b.WriteString("# whole, so each list below holds the profile's current fields and the new ones.\n")
	if note := r.capNote(); note != "" {
		b.WriteString("# " + note + "\n")
	}
	if len(r.scan.types) == 0 {
		b.WriteString("# No parked callbacks: nothing to add.\n")
		return b.String()
	}
	for _, p := range []callback.Platform{callback.PlatformTaobao, callback.Platform1688} {
		r.platformLines(&b, p)
	}
	for _, t := range r.scan.types {
		if _, ok := callbackPlatform(t.platform); !ok {
			fmt.Fprintf(&b, "\n%s\n# on platform %q, which is neither taobao nor 1688: no profile line applies.\n", t.seenLine(), cell(t.platform, 40))
		}
	}
	return b.String()
}

// platformLines writes one platform's part of profileLines.
func (r parkedReport) platformLines(b *strings.Builder, p callback.Platform) {
	taobao := p == callback.PlatformTaobao
	var types, notes []string
	newFields := map[platform.Kind][]string{}
	fieldSources := map[platform.Kind][]string{}
	for _, t := range r.scan.types {
		if t.platform != p.String() {
			continue
		}
		if !t.unknownType() {
			notes = append(notes, t.seenLine(),
				fmt.Sprintf("#   %s is a known type whose bodies did not pass the checks; no profile line changes that. Fields seen: %s",
					cell(t.typ, 0), fieldsText(t)))
			continue
		}
		if k, ok := r.prof.CallbackKind(taobao, t.typ); ok {
			notes = append(notes, t.seenLine(),
				fmt.Sprintf("#   the profile already knows %s as %s (these were parked before it did): nothing to add", cell(t.typ, 0), k))
			continue
		}
		if err := usableType(p, t.typ); err != nil {
			types = append(types, t.seenLine(), "#   cannot become a known type, so the receiver keeps parking it: "+cell(err.Error(), 200))
			continue
		}
		kind, why := t.suggestedKind(), "every body carries "+refundIDField
		switch {
		case kind != "" && r.q.kind != "" && r.q.kind != kind:
			why += fmt.Sprintf("; --kind %s not applied: edit the line if this is not a refund", r.q.kind)
		case kind == "" && r.q.kind != "":
			kind, why = r.q.kind, "given by --kind"
		}
		if kind == "" {
			types = append(types, t.seenLine(),
				fmt.Sprintf("#   kind not inferred: the bodies do not all carry %s, so %s or %s is for the operator to pick;", refundIDField, platform.KindOrderStatus, platform.KindPriceModify),
				fmt.Sprintf("#   uncomment the line with the right kind, or rerun with --type %s --kind KIND. Fields seen: %s", cell(t.typ, 0), fieldsText(t)),
				fmt.Sprintf("# %s = %q   # or %q", tomlKey(t.typ), platform.KindOrderStatus, platform.KindPriceModify))
			continue
		}
		types = append(types, t.seenLine()+"; kind "+string(kind)+": "+why, fmt.Sprintf("%s = %q", tomlKey(t.typ), kind))
		for _, f := range t.fields {
			if !r.prof.KnownField(taobao, kind, f) && !slices.Contains(newFields[kind], f) {
				newFields[kind] = append(newFields[kind], f)
			}
		}
		fieldSources[kind] = append(fieldSources[kind], t.typ)
	}
	if len(types)+len(notes) == 0 {
		return
	}
	table := profileTable(p)
	if len(notes) > 0 {
		fmt.Fprintf(b, "\n# %s\n%s\n", p, strings.Join(notes, "\n"))
	}
	if len(types) > 0 {
		fmt.Fprintf(b, "\n[%s.types]\n%s\n", table, strings.Join(types, "\n"))
	}
	var fieldLines []string
	for _, k := range platform.Kinds() {
		srcs := fieldSources[k]
		if len(srcs) == 0 {
			continue
		}
		if len(newFields[k]) == 0 {
			fieldLines = append(fieldLines, fmt.Sprintf("# %s: the profile already lists every field of %s", k, strings.Join(srcs, ", ")))
			continue
		}
		all := append(slices.Clone(r.profileFields(taobao, k)), newFields[k]...)
		fieldLines = append(fieldLines,
			fmt.Sprintf("# %s: the profile's fields and %s, seen in %s", k, strings.Join(newFields[k], ", "), strings.Join(srcs, ", ")),
			fmt.Sprintf("%s = %s", k, tomlStrings(all)))
	}
	if len(fieldLines) > 0 {
		fmt.Fprintf(b, "\n[%s.fields]\n%s\n", table, strings.Join(fieldLines, "\n"))
	}
}

// profileFields is the loaded profile's field list of a kind.
func (r parkedReport) profileFields(taobao bool, k platform.Kind) []string {
	if taobao {
		return r.prof.Callbacks.Taobao.Fields[k]
	}
	return r.prof.Callbacks.Alibaba.Fields[k]
}

// usableType asks the two owners of the rules whether typ can be a known
// type: the profile (which validates its type table) and the receiver's
// parser (which puts a known type in a subject).
func usableType(p callback.Platform, typ string) error {
	kind := platform.KindOrderStatus // any kind: only the name is in question
	var over bytes.Buffer
	fmt.Fprintf(&over, "[%s.types]\n%s = %q\n", profileTable(p), tomlKey(typ), kind)
	if _, err := platform.Parse(over.Bytes(), "(the printed line)"); err != nil {
		return err
	}
	if _, err := callback.NewParser(callback.TypeNames{p: {typ: callback.Kind(kind)}}); err != nil {
		return err
	}
	return nil
}

func fieldsText(t *parkedType) string {
	if len(t.fields) == 0 {
		return "none"
	}
	s := make([]string, len(t.fields))
	for i, f := range t.fields {
		s[i] = cell(f, 64)
	}
	out := strings.Join(s, ", ")
	if t.moreFields > 0 {
		out += fmt.Sprintf(" and %d more", t.moreFields)
	}
	return out
}

// tomlKey writes a TOML key: bare when it can be, else a quoted string.
func tomlKey(k string) string {
	bare := k != ""
	for _, c := range k {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			bare = false
			break
		}
	}
	if bare {
		return k
	}
	return tomlString(k)
}

// tomlString writes a TOML basic string. JSON's escapes (\" \\ \n \uXXXX …)
// are all TOML escapes too, and encoding/json escapes every control
// character; HTML escaping is off so '<' stays readable.
func tomlString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}

func tomlStrings(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = tomlString(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
