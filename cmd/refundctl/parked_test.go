package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/callback"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/platform"
)

// parkedOut is the --json output of parked, decoded strictly (decodeJSON
// refuses unknown keys, so a change of shape fails here).
type parkedOut struct {
	Stream         string           `json:"stream"`
	Platform       string           `json:"platform"`
	Since          string           `json:"since"`
	MaxScan        int              `json:"maxScan"`
	Scanned        int              `json:"scanned"`
	CapReached     bool             `json:"capReached"`
	ScannedThrough string           `json:"scannedThrough"`
	Types          []parkedTypeJSON `json:"types"`
	ProfileLines   *string          `json:"profileLines"`
}

func (o parkedOut) find(platform, typ string) *parkedTypeJSON {
	for i := range o.Types {
		if o.Types[i].Platform == platform && o.Types[i].Type == typ {
			return &o.Types[i]
		}
	}
	return nil
}

// stored is one callback as the stream stored it.
type stored struct {
	seq  uint64
	at   time.Time
	body string // the messageBody posted
}

// postEnvelope posts a platform envelope to the real receiver, as the
// platform would, and returns what the stream stored. Timestamps differ
// per call (the next sequence) so that no two posts dedupe.
func (e *env) postEnvelope(platform callback.Platform, typ, body string) stored {
	e.t.Helper()
	s, err := e.js.Stream(context.Background(), events.DefaultStreamName)
	if err != nil {
		e.t.Fatal(err)
	}
	n := s.CachedInfo().State.LastSeq + 1
	env, err := json.Marshal(map[string]any{"messageType": typ, "messageBody": body, "messagePlatform": int(platform),
		"timestamp": strconv.FormatUint(1779263269000+n, 10)})
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := http.Post(e.vars["RECEIVER_URL"]+"/callbacks/"+testToken, "application/json", strings.NewReader(string(env)))
	if err != nil {
		e.t.Fatalf("post %s: %v", typ, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("post %s %s: receiver answered %d", typ, body, resp.StatusCode)
	}
	if _, err := s.Info(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	seq := s.CachedInfo().State.LastSeq
	m, err := s.GetMsg(context.Background(), seq)
	if err != nil || string(m.Data) != string(env) {
		e.t.Fatalf("stored seq %d = %v, %v; want the posted envelope", seq, m, err)
	}
	return stored{seq: seq, at: m.Time, body: body}
}

// parkedFixture is the traffic of TestParked*: three parked Taobao types
// (two unknown, one known with a body that fails its checks), one parked
// 1688 type and one accepted callback, which parked must not list.
type parkedFixture struct {
	refund      []stored // taobao TB_REFUND_CREATED: every body carries refundId
	trade       []stored // taobao TB_TRADE_CHANGED: no refundId, kind not inferable
	noOrderID   stored   // taobao ORDER_CREATE without orderId: parked missing_order_id
	logistics   stored   // 1688 ORDER_LOGISTICS_CHANGED
	accepted    stored   // 1688 ORDER_CREATE: accepted
	longRefund  string   // the latest TB_REFUND_CREATED body: longer than the table shows
	streamCount uint64
}

func seedParked(t *testing.T, e *env) parkedFixture {
	t.Helper()
	var f parkedFixture
	f.refund = append(f.refund, e.postEnvelope(callback.PlatformTaobao, "TB_REFUND_CREATED", `{"refundId":"R1","orderId":"11","tid":"T1"}`))
	f.trade = append(f.trade, e.postEnvelope(callback.PlatformTaobao, "TB_TRADE_CHANGED", `{"tid":"T1","status":"WAIT_SELLER_SEND_GOODS"}`))
	f.noOrderID = e.postEnvelope(callback.PlatformTaobao, "ORDER_CREATE", `{"orderNo":"N1","tid":"T9"}`)
	f.refund = append(f.refund, e.postEnvelope(callback.PlatformTaobao, "TB_REFUND_CREATED", `{"refundId":"R2","orderId":"12","refundFee":"12.30"}`))
	f.logistics = e.postEnvelope(callback.Platform1688, "ORDER_LOGISTICS_CHANGED", `{"orderId":"31","logisticsNo":"SF1"}`)
	f.accepted = e.postEnvelope(callback.Platform1688, "ORDER_CREATE", `{"orderId":"32","orderStatus":"waitbuyerpay"}`)
	f.trade = append(f.trade, e.postEnvelope(callback.PlatformTaobao, "TB_TRADE_CHANGED", `{"tid":"T2","status":"TRADE_FINISHED","modified":"2026-05-20 15:40:00"}`))
	f.longRefund = `{"refundId":"R3","orderId":"13","tid":"T3","buyerNick":"` + strings.Repeat("买家", 60) + `","refundFee":"1.00"}`
	f.refund = append(f.refund, e.postEnvelope(callback.PlatformTaobao, "TB_REFUND_CREATED", f.longRefund))
	f.streamCount = e.streamCount(events.DefaultStreamName)
	return f
}

func TestParkedLists(t *testing.T) {
	e := newEnv(t)
	e.startReceiver()
	f := seedParked(t, e)

	var o parkedOut
	decodeJSON(t, e.mustRun("parked", "--json").stdout, &o)
	if o.Stream != "CALLBACKS" || o.Scanned != 7 || o.CapReached || o.MaxScan != defaultParkedMaxScan || o.Since != "" ||
		o.ProfileLines != nil || len(o.Types) != 4 {
		t.Fatalf("parked --json = %+v; want 7 parked callbacks of 4 types, no cap, no profile lines", o)
	}
	order := []string{o.Types[0].Type, o.Types[1].Type, o.Types[2].Type, o.Types[3].Type}
	if strings.Join(order, " ") != "ORDER_CREATE TB_REFUND_CREATED TB_TRADE_CHANGED ORDER_LOGISTICS_CHANGED" {
		t.Errorf("types in order %v; want Taobao's by name, then 1688's", order)
	}
	if o.ScannedThrough != timeJSON(f.refund[2].at) {
		t.Errorf("scannedThrough = %s; want the last parked callback's %s", o.ScannedThrough, timeJSON(f.refund[2].at))
	}

	checks := []struct {
		platform, typ  string
		msgs           []stored
		reason         string
		profileKind    string
		suggested      string
		fields         string
		exampleSubject string
	}{
		{"taobao", "TB_REFUND_CREATED", f.refund, "unknown_type", "", "refund", "refundId orderId tid refundFee buyerNick", ""},
		{"taobao", "TB_TRADE_CHANGED", f.trade, "unknown_type", "", "", "tid status modified", ""},
		{"taobao", "ORDER_CREATE", []stored{f.noOrderID}, "missing_order_id", "order_status", "", "orderNo tid", ""},
		{"1688", "ORDER_LOGISTICS_CHANGED", []stored{f.logistics}, "unknown_type", "", "", "orderId logisticsNo", ""},
	}
	for _, c := range checks {
		got := o.find(c.platform, c.typ)
		if got == nil {
			t.Errorf("parked --json lacks %s %s", c.platform, c.typ)
			continue
		}
		first, last := c.msgs[0], c.msgs[len(c.msgs)-1]
		if got.Count != len(c.msgs) || got.FirstSeen != timeJSON(first.at) || got.LastSeen != timeJSON(last.at) {
			t.Errorf("%s %s: count %d, first %s, last %s; want %d, %s, %s", c.platform, c.typ, got.Count, got.FirstSeen, got.LastSeen,
				len(c.msgs), timeJSON(first.at), timeJSON(last.at))
		}
		if len(got.Reasons) != 1 || got.Reasons[0].Reason != c.reason || got.Reasons[0].Count != len(c.msgs) || got.Reasons[0].Detail == "" {
			t.Errorf("%s %s: reasons %+v; want %s ×%d with its detail", c.platform, c.typ, got.Reasons, c.reason, len(c.msgs))
		}
		if got.ProfileKind != c.profileKind || got.SuggestedKind != c.suggested || strings.Join(got.Fields, " ") != c.fields {
			t.Errorf("%s %s: profileKind %q, suggestedKind %q, fields %v; want %q, %q, %s", c.platform, c.typ,
				got.ProfileKind, got.SuggestedKind, got.Fields, c.profileKind, c.suggested, c.fields)
		}
		var body bytes.Buffer
		if err := json.Compact(&body, got.Example.Body); err != nil {
			t.Errorf("%s %s: example body %s: %v", c.platform, c.typ, got.Example.Body, err)
		}
		if got.Example.Seq != last.seq || got.Example.StoredAt != timeJSON(last.at) || body.String() != last.body {
			t.Errorf("%s %s: example seq %d at %s body %s; want the latest, seq %d at %s body %s", c.platform, c.typ,
				got.Example.Seq, got.Example.StoredAt, got.Example.Body, last.seq, timeJSON(last.at), last.body)
		}
	}

	// The table: one row per type, the example clipped, a summary line.
	r := e.mustRun("parked")
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(lines) != 7 || !strings.HasPrefix(lines[0], "PLATFORM") || lines[5] != "" {
		t.Fatalf("parked table:\n%s", r.stdout)
	}
	row := strings.Fields(lines[2])
	if strings.Join(row[:3], " ") != "taobao TB_REFUND_CREATED 3" || row[7] != "unknown_type" {
		t.Errorf("row 2 = %q; want taobao TB_REFUND_CREATED 3 … unknown_type", lines[2])
	}
	if want := timeHuman(f.refund[0].at); !strings.Contains(lines[2], want) {
		t.Errorf("row 2 = %q; want first seen %s", lines[2], want)
	}
	clipped := cell(f.longRefund, parkedExampleCells)
	if !strings.HasSuffix(lines[2], clipped) || !strings.HasSuffix(clipped, "…") {
		t.Errorf("row 2 = %q; want the latest body clipped to %d characters", lines[2], parkedExampleCells)
	}
	if want := "7 parked callbacks read in stream CALLBACKS; 4 types. Example bodies are clipped to 100 characters: --json shows them whole."; lines[6] != want {
		t.Errorf("summary = %q; want %q", lines[6], want)
	}

	// --platform and --type narrow the list; the scan count stays honest.
	decodeJSON(t, e.mustRun("parked", "--platform", "1688", "--json").stdout, &o)
	if o.Platform != "1688" || o.Scanned != 1 || len(o.Types) != 1 || o.Types[0].Type != "ORDER_LOGISTICS_CHANGED" {
		t.Errorf("parked --platform 1688 = %+v", o)
	}
	decodeJSON(t, e.mustRun("parked", "--type", "TB_TRADE_CHANGED", "--type", "ORDER_CREATE", "--json").stdout, &o)
	if o.Scanned != 7 || len(o.Types) != 2 || o.Types[0].Type != "ORDER_CREATE" || o.Types[1].Type != "TB_TRADE_CHANGED" {
		t.Errorf("parked --type ×2 = %+v", o)
	}

	// Reading changed nothing: the same messages, the same answer.
	if n := e.streamCount(events.DefaultStreamName); n != f.streamCount {
		t.Errorf("stream holds %d after parked; want %d", n, f.streamCount)
	}
	var again parkedOut
	decodeJSON(t, e.mustRun("parked", "--json").stdout, &again)
	if again.Scanned != 7 || len(again.Types) != 4 || again.Types[1].Count != 3 {
		t.Errorf("second parked --json = %+v; want the first run's answer", again)
	}
}

func TestParkedSinceAndCap(t *testing.T) {
	e := newEnv(t)
	e.startReceiver()
	f := seedParked(t, e)
	mark := f.logistics.at.Add(time.Nanosecond) // after the 1688 type, before the second TB_TRADE_CHANGED

	var o parkedOut
	decodeJSON(t, e.mustRun("parked", "--since", mark.Format(time.RFC3339Nano), "--json").stdout, &o)
	if o.Scanned != 2 || len(o.Types) != 2 || o.Since != timeJSON(mark) {
		t.Fatalf("parked --since = %+v; want the last two parked callbacks", o)
	}
	if got := o.find("taobao", "TB_REFUND_CREATED"); got == nil || got.Count != 1 || got.FirstSeen != timeJSON(f.refund[2].at) {
		t.Errorf("TB_REFUND_CREATED since the mark = %+v; want only the third", got)
	}
	if got := o.find("taobao", "TB_TRADE_CHANGED"); got == nil || got.Count != 1 || got.FirstSeen != timeJSON(f.trade[1].at) {
		t.Errorf("TB_TRADE_CHANGED since the mark = %+v; want only the second", got)
	}
	decodeJSON(t, e.mustRun("parked", "--since", "1h", "--json").stdout, &o)
	if o.Scanned != 7 {
		t.Errorf("parked --since 1h read %d; want all 7", o.Scanned)
	}

	// The cap: oldest first, stopping at --max-scan and saying so.
	decodeJSON(t, e.mustRun("parked", "--max-scan", "3", "--json").stdout, &o)
	if o.Scanned != 3 || !o.CapReached || o.MaxScan != 3 || o.ScannedThrough != timeJSON(f.noOrderID.at) || len(o.Types) != 3 {
		t.Errorf("parked --max-scan 3 = %+v; want 3 read, cap reached after the third (ORDER_CREATE)", o)
	}
	r := e.mustRun("parked", "--max-scan", "3")
	want := "scan stopped at --max-scan 3: parked callbacks stored after " + timeHuman(f.noOrderID.at) + " UTC (seq " +
		strconv.FormatUint(f.noOrderID.seq, 10) + ") were not read; narrow --since or raise --max-scan\n"
	if !strings.HasSuffix(r.stdout, want) {
		t.Errorf("parked --max-scan 3 ends %q; want %q", r.stdout[max(0, len(r.stdout)-len(want)-20):], want)
	}
	r = e.mustRun("parked", "--max-scan", "3", "--profile-lines")
	if !strings.Contains(r.stdout, "# "+want) {
		t.Errorf("parked --max-scan 3 --profile-lines lacks the cap comment:\n%s", r.stdout)
	}
	// Exactly as many as there are: not a cap.
	decodeJSON(t, e.mustRun("parked", "--max-scan", "7", "--json").stdout, &o)
	if o.Scanned != 7 || o.CapReached {
		t.Errorf("parked --max-scan 7 = %+v; want all read, no cap", o)
	}
	if r := e.mustRun("parked", "--max-scan", "7"); strings.Contains(r.stdout, "scan stopped") {
		t.Errorf("parked --max-scan 7 says it stopped:\n%s", r.stdout)
	}
}

// profileWith parses lines as UPSTREAM_PROFILE and fails the test when the
// profile refuses them.
func profileWith(t *testing.T, lines string) *platform.Profile {
	t.Helper()
	p, err := platform.Parse([]byte(lines), "parked lines")
	if err != nil {
		t.Fatalf("platform.Parse(parked --profile-lines) = %v\n%s", err, lines)
	}
	return p
}

func TestParkedProfileLines(t *testing.T) {
	e := newEnv(t)
	e.startReceiver()
	f := seedParked(t, e)

	r := e.mustRun("parked", "--profile-lines")
	lines := r.stdout
	p := profileWith(t, lines)
	if k, ok := p.CallbackKind(true, "TB_REFUND_CREATED"); !ok || k != platform.KindRefund {
		t.Errorf("with the lines, CallbackKind(taobao, TB_REFUND_CREATED) = %q, %v; want refund\n%s", k, ok, lines)
	}
	for _, field := range []string{"refundId", "orderId", "subOrderId", "refundStatus", "refundAmount", "tid", "refundFee", "buyerNick"} {
		if !p.KnownField(true, platform.KindRefund, field) {
			t.Errorf("with the lines, taobao refund field %s is unknown; want the profile's fields and the new ones\n%s", field, lines)
		}
	}
	for _, typ := range []string{"TB_TRADE_CHANGED", "ORDER_LOGISTICS_CHANGED"} {
		for _, taobao := range []bool{true, false} {
			if k, ok := p.CallbackKind(taobao, typ); ok {
				t.Errorf("with the lines, %s is known as %s; want it left for the operator", typ, k)
			}
		}
	}
	if _, ok := p.CallbackKind(true, "ORDER_CREATE"); !ok {
		t.Errorf("with the lines, ORDER_CREATE is no longer a Taobao type")
	}
	for _, want := range []string{
		"[callbacks.taobao.types]\n# TB_REFUND_CREATED: 3 parked (unknown_type), first " + timeHuman(f.refund[0].at) + " UTC, last " +
			timeHuman(f.refund[2].at) + " UTC; kind refund: every body carries refundId\nTB_REFUND_CREATED = \"refund\"\n",
		"# TB_TRADE_CHANGED: 2 parked (unknown_type), first " + timeHuman(f.trade[0].at) + " UTC, last " + timeHuman(f.trade[1].at) + " UTC\n" +
			"#   kind not inferred: the bodies do not all carry refundId, so order_status or price_modify is for the operator to pick;\n" +
			"#   uncomment the line with the right kind, or rerun with --type TB_TRADE_CHANGED --kind KIND. Fields seen: tid, status, modified\n" +
			"# TB_TRADE_CHANGED = \"order_status\"   # or \"price_modify\"\n",
		"[callbacks.taobao.fields]\n# refund: the profile's fields and tid, refundFee, buyerNick, seen in TB_REFUND_CREATED\n" +
			`refund = ["refundId", "orderId", "subOrderId", "refundStatus", "refundAmount", "tid", "refundFee", "buyerNick"]` + "\n",
		"#   ORDER_CREATE is a known type whose bodies did not pass the checks; no profile line changes that. Fields seen: orderNo, tid",
		"[callbacks.alibaba.types]\n# ORDER_LOGISTICS_CHANGED: 1 parked (unknown_type)",
	} {
		if !strings.Contains(lines, want) {
			t.Errorf("parked --profile-lines lacks\n%s\n--- got:\n%s", want, lines)
		}
	}

	// The operator's pick, per type: the line and its kind's fields.
	r = e.mustRun("parked", "--profile-lines", "--type", "TB_TRADE_CHANGED", "--kind", "price_modify")
	p = profileWith(t, r.stdout)
	if k, ok := p.CallbackKind(true, "TB_TRADE_CHANGED"); !ok || k != platform.KindPriceModify {
		t.Errorf("--kind price_modify: CallbackKind = %q, %v; want price_modify\n%s", k, ok, r.stdout)
	}
	if !p.KnownField(true, platform.KindPriceModify, "modified") || !p.KnownField(true, platform.KindPriceModify, "payTime") {
		t.Errorf("--kind price_modify: fields lack the new modified or the profile's payTime\n%s", r.stdout)
	}
	if _, ok := p.CallbackKind(true, "TB_REFUND_CREATED"); ok || strings.Contains(r.stdout, "TB_REFUND_CREATED") {
		t.Errorf("--type TB_TRADE_CHANGED printed another type\n%s", r.stdout)
	}
	r = e.mustRun("parked", "--profile-lines", "--platform", "1688", "--kind", "order_status")
	p = profileWith(t, r.stdout)
	if k, ok := p.CallbackKind(false, "ORDER_LOGISTICS_CHANGED"); !ok || k != platform.KindOrderStatus || !p.KnownField(false, platform.KindOrderStatus, "logisticsNo") {
		t.Errorf("1688 --kind order_status: CallbackKind = %q, %v, logisticsNo known %v\n%s", k, ok,
			p.KnownField(false, platform.KindOrderStatus, "logisticsNo"), r.stdout)
	}
	// --kind does not overrule a body that shows its kind.
	r = e.mustRun("parked", "--profile-lines", "--type", "TB_REFUND_CREATED", "--kind", "order_status")
	if k, _ := profileWith(t, r.stdout).CallbackKind(true, "TB_REFUND_CREATED"); k != platform.KindRefund ||
		!strings.Contains(r.stdout, "--kind order_status not applied") {
		t.Errorf("--kind order_status on a refund type: kind %q\n%s", k, r.stdout)
	}

	// --json carries the same lines.
	var o parkedOut
	decodeJSON(t, e.mustRun("parked", "--profile-lines", "--json").stdout, &o)
	if o.ProfileLines == nil || *o.ProfileLines != lines {
		t.Errorf("parked --profile-lines --json: profileLines differ from the text output")
	}

	// Pasted into UPSTREAM_PROFILE, the lines leave nothing to add for the type.
	path := filepath.Join(t.TempDir(), "profile.toml")
	if err := os.WriteFile(path, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	e.vars["UPSTREAM_PROFILE"] = path
	r = e.mustRun("parked", "--profile-lines")
	if !strings.Contains(r.stdout, "the profile already knows TB_REFUND_CREATED as refund") || strings.Contains(r.stdout, "\nTB_REFUND_CREATED =") {
		t.Errorf("with the lines in UPSTREAM_PROFILE, parked --profile-lines still adds TB_REFUND_CREATED:\n%s", r.stdout)
	}
	decodeJSON(t, e.mustRun("parked", "--type", "TB_REFUND_CREATED", "--json").stdout, &o)
	if len(o.Types) != 1 || o.Types[0].ProfileKind != "refund" {
		t.Errorf("with the lines in UPSTREAM_PROFILE, profileKind = %+v; want refund", o.Types)
	}
	if err := os.WriteFile(path, []byte("[callbacks.taobao.types]\nX = \"refunds\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.wantErr(1, "callbacks.taobao.types.X", "parked")
}

// A type name the profile or the receiver could not use gets a comment, and
// the lines still parse.
func TestParkedProfileLinesUnusableName(t *testing.T) {
	e := newEnv(t)
	e.startReceiver()
	e.postEnvelope(callback.PlatformTaobao, "trade.refund created", `{"refundId":"R1","orderId":"1"}`)
	e.postEnvelope(callback.PlatformTaobao, "退款创建", `{"refundId":"R2","orderId":"2"}`)
	r := e.mustRun("parked", "--profile-lines")
	p := profileWith(t, r.stdout)
	for _, typ := range []string{"trade.refund created", "退款创建"} {
		if _, ok := p.CallbackKind(true, typ); ok {
			t.Errorf("%q became a known type", typ)
		}
		if !strings.Contains(r.stdout, "# "+typ+": 1 parked (unknown_type)") {
			t.Errorf("no comment for %q:\n%s", typ, r.stdout)
		}
	}
	if strings.Count(r.stdout, "#   cannot become a known type, so the receiver keeps parking it: ") != 2 || strings.Contains(r.stdout, "[callbacks.taobao.fields]") {
		t.Errorf("want two unusable-name comments and no fields table:\n%s", r.stdout)
	}
}

func TestParkedEmpty(t *testing.T) {
	e := newEnv(t)
	e.startReceiver()
	e.mustRun("trigger", "create", "--platform", "1688", "--order", "1") // accepted, not parked
	r := e.mustRun("parked")
	if r.stdout != "no parked callbacks in stream CALLBACKS (0 read)\n" {
		t.Errorf("parked on a stream without parked callbacks = %q", r.stdout)
	}
	var o parkedOut
	decodeJSON(t, e.mustRun("parked", "--json").stdout, &o)
	if o.Types == nil || len(o.Types) != 0 || o.Scanned != 0 || o.ScannedThrough != "" {
		t.Errorf("parked --json on no parked callbacks = %+v; want an empty types list", o)
	}
	r = e.mustRun("parked", "--profile-lines")
	if !strings.HasSuffix(r.stdout, "# No parked callbacks: nothing to add.\n") {
		t.Errorf("parked --profile-lines on none:\n%s", r.stdout)
	}
	profileWith(t, r.stdout)
}

func TestParkedErrors(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name string
		code int
		want string
		args []string
	}{
		{"cap zero", 2, "--max-scan 0: want 1 to 1000000", []string{"--max-scan", "0"}},
		{"cap too large", 2, "--max-scan 1000001: want 1 to 1000000", []string{"--max-scan", "1000001"}},
		{"cap not a number", 2, `invalid argument "lots" for "--max-scan"`, []string{"--max-scan", "lots"}},
		{"since malformed", 2, `--since "yesterday": want an RFC 3339 time`, []string{"--since", "yesterday"}},
		{"since negative", 2, `--since "-2h": a duration must not be negative`, []string{"--since", "-2h"}},
		{"since in the future", 2, "--since 2999-01-01T00:00:00Z is in the future", []string{"--since", "2999-01-01T00:00:00Z"}},
		{"platform", 2, `--platform "alibaba": want taobao or 1688`, []string{"--platform", "alibaba"}},
		{"empty type", 2, "--type: the message type must not be empty", []string{"--type", ""}},
		{"kind without lines", 2, "--kind refund: only with --profile-lines", []string{"--kind", "refund"}},
		{"kind unknown", 2, `--kind "refunds": want one of order_status, price_modify, refund`, []string{"--profile-lines", "--kind", "refunds"}},
		{"argument", 2, `unknown command "taobao" for "refundctl parked"`, []string{"taobao"}},
		{"unknown flag", 2, "unknown flag: --limit", []string{"--limit", "5"}},
		{"no stream", 1, "stream NOPE not found (is the receiver running?)", []string{"--stream", "NOPE"}},
		{"no NATS", 1, "connect to NATS at nats://127.0.0.1:1", []string{"--nats-url", "nats://127.0.0.1:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { e.wantErr(tt.code, tt.want, append([]string{"parked"}, tt.args...)...) })
	}
}
