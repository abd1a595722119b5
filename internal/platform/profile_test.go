package platform

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultProfileIsValid(t *testing.T) {
	p, err := Parse(nil, "")
	if err != nil {
		t.Fatalf("Parse(default) = %v", err)
	}
	if got := p.Endpoint(TaobaoRender).Path; got != "/open/order/refund/render" {
		t.Errorf("taobao_render path = %q; want the SEED path", got)
	}
	if p.Class(4092) != ClassDuplicateRefund || p.Class(200) != ClassUnknown || p.Class(9999) != ClassUnknown {
		t.Errorf("Class(4092, 200, 9999) = %q, %q, %q", p.Class(4092), p.Class(200), p.Class(9999))
	}
	if !p.Retryable(4290) || !p.Retryable(5000) || p.Retryable(4092) || p.Retryable(9999) {
		t.Error("retryable: want 4290 and 5000 only")
	}
	if !p.NotApplied(4092) || p.NotApplied(5000) || p.NotApplied(9999) {
		t.Error("not applied: want 4092 yes, 5000 and unknown no")
	}
	for raw, want := range map[string]Phase{"WAIT_SELLER_AGREE": PhaseWaitSellerAgree, "0": PhaseWaitSellerAgree,
		"SELLER_REFUSE_BUYER": PhaseSellerRefused, "5": PhaseSuccess, " CLOSED ": PhaseClosed, "wait_buyer_return_goods": PhaseWaitBuyerReturn} {
		if got, ok := p.TaobaoPhase(raw); !ok || got != want {
			t.Errorf("TaobaoPhase(%q) = %q, %v; want %q", raw, got, ok, want)
		}
	}
	for _, raw := range []string{"", "6", "waitselleragree", "CLOSED_X"} {
		if got, ok := p.TaobaoPhase(raw); ok {
			t.Errorf("TaobaoPhase(%q) = %q; want unknown", raw, got)
		}
	}
	if got, ok := p.AlibabaPhase("waitbuyermodify"); !ok || got != PhaseSellerRefused {
		t.Errorf("AlibabaPhase(waitbuyermodify) = %q, %v", got, ok)
	}
	if k, ok := p.CallbackKind(true, "ORDER_BUYER_VIEW_ORDER_BUYER_REFUND"); !ok || k != KindRefund {
		t.Errorf("CallbackKind(taobao, refund type) = %q, %v", k, ok)
	}
	at, err := p.ParseTime("2026-05-20 15:40:00")
	if err != nil || !at.Equal(time.Date(2026, 5, 20, 7, 40, 0, 0, time.UTC)) {
		t.Errorf("ParseTime = %v, %v; want 07:40 UTC", at, err)
	}
	if got := p.FormatTime(at); got != "2026-05-20 15:40:00" {
		t.Errorf("FormatTime = %q", got)
	}
}

// Every endpoint in the product's vocabulary has a default, and the
// defaults hold the documented paths where a page documents one.
func TestDefaultEndpointsCoverTheVocabulary(t *testing.T) {
	p := Default()
	if len(p.Endpoints) != len(AllEndpoints()) {
		t.Fatalf("%d endpoints in the profile; want %d", len(p.Endpoints), len(AllEndpoints()))
	}
	documented := map[Endpoint]string{
		TaobaoCancel:        "/v2/taobao/order/refund/cancel/{refundId}", // SEED-003
		TaobaoSubmitMessage: "/open/order/refund/submit/message",         // SEED-001
		AlibabaRefundInfo:   "/alibaba/refund/info",                      // SEED-002
		AlibabaGoodsReturn:  "/alibaba/refund/goods/return",              // SEED-000
	}
	for e, want := range documented {
		if got := p.Endpoint(e); got.Path != want || got.Evidence != "SEED" {
			t.Errorf("%s = %+v; want path %q evidence SEED", e, got, want)
		}
	}
}

func TestOverrideMergesKeyByKey(t *testing.T) {
	p, err := Parse([]byte(`
[endpoints.taobao_submit]
path = "/v2/taobao/order/refund/submit"
family = "v2"

[taobao.refund_status]
closed = { names = ["REFUND_CLOSED", "CLOSED"], code = 9 }

[error_codes]
not_found = [404, 4041]
`), "over.toml")
	if err != nil {
		t.Fatalf("Parse = %v", err)
	}
	if e := p.Endpoint(TaobaoSubmit); e.Path != "/v2/taobao/order/refund/submit" || e.Method != "POST" || e.Family != "v2" {
		t.Errorf("taobao_submit = %+v; want the new path, the default method", e)
	}
	if ph, ok := p.TaobaoPhase("REFUND_CLOSED"); !ok || ph != PhaseClosed {
		t.Errorf("REFUND_CLOSED = %q, %v", ph, ok)
	}
	if ph, ok := p.TaobaoPhase("9"); !ok || ph != PhaseClosed {
		t.Errorf("code 9 = %q, %v", ph, ok)
	}
	if _, ok := p.TaobaoPhase("4"); ok {
		t.Error("code 4 is still known after closed was replaced")
	}
	if ph, ok := p.TaobaoPhase("SUCCESS"); !ok || ph != PhaseSuccess {
		t.Error("an unmentioned status was lost")
	}
	if p.Class(404) != ClassNotFound || p.Code(ClassNotFound) != 404 {
		t.Errorf("not_found = %d; want 404 first", p.Code(ClassNotFound))
	}
	if p.Endpoint(TaobaoRender).Path != "/open/order/refund/render" {
		t.Error("an unmentioned endpoint changed")
	}
}

// A bad profile names the key at fault in one line, and nothing is returned.
func TestBadProfileNamesTheKey(t *testing.T) {
	cases := []struct {
		name, toml, want string
	}{
		{"unknown top key", "[taobaoo]\nx = 1", "unknown key taobaoo"},
		{"unknown nested key", "[taobao.list]\nitem_field = \"x\"", "unknown key taobao.list.item_field"},
		{"unknown endpoint", "[endpoints.taobao_refund]\npath = \"/x\"", "endpoints.taobao_refund: unknown endpoint"},
		{"duplicate status name", "[taobao.refund_status]\nclosed = { names = [\"SUCCESS\"], code = 4 }", "duplicate status \"SUCCESS\""},
		{"duplicate status code", "[taobao.refund_status]\nclosed = { names = [\"CLOSED\"], code = 5 }", "duplicate status code 5"},
		{"missing class", "[error_codes]\nnot_found = []", "error_codes.not_found: missing"},
		{"code in two classes", "[error_codes]\nnot_found = [4092]", "code 4092 is already in error_codes.not_found"},
		{"unknown phase", "[alibaba.refund_status]\nrefunding = { names = [\"x\"] }", "alibaba.refund_status.refunding: unknown phase"},
		{"1688 code", "[alibaba.refund_status]\nclosed = { names = [\"refundclose\"], code = 3 }", "alibaba.refund_status.closed.code"},
		{"bad retryable class", "[error_codes]\nretryable = [\"timeout\"]", "error_codes.retryable: \"timeout\" is not an error class"},
		{"wrong type", "[signature]\nnonce_length = \"32\"", "nonce_length"},
		{"bad layout", "[times]\nlayouts = [\"yyyy-MM-dd HH:mm:ss\"]", "times.layouts"},
		{"bad offset", "[times]\nutc_offset = \"Asia/Shanghai\"", "times.utc_offset"},
		{"bad unit", "[amounts]\ntaobao = \"jiao\"", "amounts.taobao"},
		{"GET with a body", "[endpoints.taobao_submit]\nmethod = \"GET\"", "endpoints.taobao_submit.method"},
		{"bad path", "[endpoints.taobao_submit]\npath = \"open/x\"", "endpoints.taobao_submit.path"},
		{"same path twice", "[endpoints.taobao_submit]\npath = \"/open/order/refund/render\"", "is also endpoints."},
		{"bad kind", "[callbacks.taobao]\ntypes = { REFUND = \"refunded\" }", "callbacks.taobao.types.REFUND"},
		{"bad type name", "[callbacks.taobao]\ntypes = { \"A.B\" = \"refund\" }", "callbacks.taobao.types"},
		{"syntax", "[taobao\n", "line "},
		{"duplicate key", "[amounts]\ntaobao = \"fen\"\ntaobao = \"yuan\"", "taobao"},
		{"blank status name", "[taobao.refund_status]\nclosed = { names = [\" \"], code = 4 }", "taobao.refund_status.closed.names"},
		{"key in the wrong case", "[taobAo.refund_status]\nclosed = { names = [\"X\"], code = 4 }", "unknown key taobAo (did you mean taobao?)"},
		{"missing signature secret", "[signature]\nparts = [\"access-key\", \"timestamp\"]", "signature.parts: must include secret"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := Parse([]byte(c.toml), "bad.toml")
			if err == nil {
				t.Fatalf("Parse(%q) = ok; want an error naming %q", c.toml, c.want)
			}
			if p != nil {
				t.Error("a profile was returned with the error")
			}
			msg := err.Error()
			if !strings.Contains(msg, c.want) || !strings.HasPrefix(msg, "platform profile bad.toml: ") {
				t.Errorf("error = %q; want it to start with the file and contain %q", msg, c.want)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error spans lines: %q", msg)
			}
		})
	}
}

// TestOverrideRemovesACallbackType: tables merge, so a wrong built-in type
// name is removed by mapping it to "".
func TestOverrideRemovesACallbackType(t *testing.T) {
	p, err := Parse([]byte("[callbacks.taobao]\ntypes = { ORDER_CREATE = \"\", TB_TRADE = \"order_status\" }\n"), "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.CallbackKind(true, "ORDER_CREATE"); ok {
		t.Error("ORDER_CREATE is still a Taobao type")
	}
	if k, ok := p.CallbackKind(true, "TB_TRADE"); !ok || k != KindOrderStatus {
		t.Error("TB_TRADE is not known")
	}
	if _, ok := p.Callbacks.Taobao.Types["ORDER_CREATE"]; ok {
		t.Error("the removed name is still in the table")
	}
	if _, ok := p.CallbackKind(false, "ORDER_CREATE"); !ok {
		t.Error("removing a Taobao name removed the 1688 one")
	}
	var all strings.Builder
	all.WriteString("[callbacks.alibaba]\ntypes = { ")
	for name := range Default().Callbacks.Alibaba.Types {
		all.WriteString(name + " = \"\", ")
	}
	all.WriteString("}\n")
	if _, err := Parse([]byte(strings.Replace(all.String(), ", }", " }", 1)), "x"); err == nil || !strings.Contains(err.Error(), "callbacks.alibaba.types: no message type left") {
		t.Errorf("removing every type: %v; want an error", err)
	}
}

func TestLoadReadsTheNamedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "profile.toml")
	if err := os.WriteFile(path, []byte("[amounts]\ntaobao = \"yuan\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := Load(path)
	if err != nil || p.AmountUnit(true) != UnitYuan || p.AmountUnit(false) != UnitFen {
		t.Fatalf("Load = %v, %v; want taobao in yuan", p, err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.toml")); err == nil || !strings.Contains(err.Error(), "missing.toml") {
		t.Errorf("Load(missing) = %v; want an error naming the file", err)
	}
}

func TestYuanFen(t *testing.T) {
	for in, want := range map[string]int64{"12.34": 1234, "12.3": 1230, "12": 1200, "0.01": 1, "-1.5": -150} {
		if got, err := YuanToFen(in); err != nil || got != want {
			t.Errorf("YuanToFen(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"12.345", "abc", "", "1e30"} {
		if got, err := YuanToFen(in); err == nil {
			t.Errorf("YuanToFen(%q) = %d; want an error", in, got)
		}
	}
	for fen, want := range map[int64]string{1234: "12.34", 5: "0.05", -150: "-1.50", 0: "0.00"} {
		if got := FenToYuan(fen); got != want {
			t.Errorf("FenToYuan(%d) = %q; want %q", fen, got, want)
		}
	}
}

// FuzzParse: no override, however malformed, panics or yields a profile
// that fails its own lookups.
func FuzzParse(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("[amounts]\ntaobao = \"yuan\""))
	f.Add([]byte("[taobao.refund_status]\nclosed = { names = [\"X\"], code = 4 }"))
	f.Add([]byte("[error_codes]\nnot_found = [1]"))
	f.Add([]byte("[callbacks.taobao]\ntypes = { A = \"refund\" }"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b, "fuzz")
		if err != nil {
			if p != nil {
				t.Fatal("profile returned with an error")
			}
			return
		}
		for _, ph := range Phases() {
			if got, ok := p.TaobaoPhase(p.TaobaoName(ph)); !ok || got != ph {
				t.Fatalf("taobao %q does not round-trip", ph)
			}
			if got, ok := p.AlibabaPhase(p.AlibabaName(ph)); !ok || got != ph {
				t.Fatalf("1688 %q does not round-trip", ph)
			}
		}
		for _, e := range AllEndpoints() {
			if p.Endpoint(e).Path == "" {
				t.Fatalf("endpoint %s lost", e)
			}
		}
	})
}
