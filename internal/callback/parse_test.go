package callback

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/refundhub/refundhub/internal/platform"
)

func newTestParser(t testing.TB) *Parser {
	t.Helper()
	p, err := NewParser(DefaultTypeNames())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The documented ORDER_CREATE example (reference §3.2), verbatim.
const docExample = `{"messageType":"ORDER_CREATE","messageBody":"{\"orderId\":\"3305075341149134260\",\"orderNo\":\"PO202605200001\",\"orderStatus\":\"WAITING_FOR_PAYMENT\",\"payStatus\":1,\"totalAmount\":10000,\"shippingFee\":500,\"productAmount\":9500,\"refundAmount\":0,\"refundStatus\":null,\"closeReason\":null,\"tbCreateTime\":\"2026-05-20 15:40:00\",\"payTime\":null}","messagePlatform":1,"timestamp":"1779263269913"}`

func TestParseDocumentedExample(t *testing.T) {
	ev, err := newTestParser(t).Parse([]byte(docExample))
	if err != nil {
		t.Fatalf("Parse(doc example): %v", err)
	}
	if ev.Parked() || ev.Platform != Platform1688 || ev.Type != TypeOrderCreate || ev.Kind != KindOrderStatus || ev.TimestampMS != 1779263269913 {
		t.Fatalf("event = %+v", ev)
	}
	want := OrderBody{OrderID: "3305075341149134260", OrderNo: "PO202605200001", OrderStatus: "WAITING_FOR_PAYMENT", PayStatus: 1,
		TotalAmount: 10000, ShippingFee: 500, ProductAmount: 9500, TbCreateTime: "2026-05-20 15:40:00"}
	if ev.Order == nil || !reflect.DeepEqual(*ev.Order, want) {
		t.Errorf("order = %+v; want %+v", ev.Order, want)
	}
	if len(ev.ID) != 32 {
		t.Errorf("ID %q: want 32 hex characters", ev.ID)
	}
}

func TestParseVerdicts(t *testing.T) {
	p := newTestParser(t)
	env := func(typ string, platform string, body string, ts string) string {
		b, _ := json.Marshal(body)
		return `{"messageType":"` + typ + `","messagePlatform":` + platform + `,"messageBody":` + string(b) + `,"timestamp":` + ts + `}`
	}
	cases := []struct {
		name string
		in   string
		code Code       // rejection, or ""
		park ParkReason // when accepted
		kind Kind
	}{
		{"order, ts string", env("ORDER_PAY_SUCCESS", "1", `{"orderId":"1"}`, `"17"`), "", "", KindOrderStatus},
		{"order, ts number", env("ORDER_PAY_SUCCESS", "0", `{"orderId":1}`, `17`), "", "", KindOrderStatus},
		{"price modify", env("ORDER_BUYER_VIEW_ORDER_PRICE_MODIFY", "1", `{"orderId":"1","totalAmount":"9850"}`, `"0"`), "", "", KindPriceModify},
		// A fraction of a fen means the unit is not fen: kept and parked, never rounded.
		{"fractional amount", env("ORDER_BUYER_VIEW_ORDER_PRICE_MODIFY", "1", `{"orderId":"1","totalAmount":"98.5"}`, `"0"`), "", ParkInvalidBody, KindPriceModify},
		{"refund", env("ORDER_BUYER_VIEW_ORDER_BUYER_REFUND", "1", `{"refundId":"TQ1","orderId":"2"}`, `"1"`), "", "", KindRefund},
		{"refund, subOrderId optional", env("ORDER_BUYER_VIEW_ORDER_BUYER_REFUND", "0", `{"refundId":"TQ1","orderId":"2"}`, `"1"`), "", "", KindRefund},
		{"unknown fields ignored", `{"x":[1,{"y":null}],` + env("ORDER_CREATE", "1", `{"orderId":"1","new":{"a":[]}}`, `"1"`)[1:], "", "", KindOrderStatus},
		{"escaped key", `{"message\u0054ype":"ORDER_CREATE","messagePlatform":1,"messageBody":"{\"orderId\":\"1\"}","timestamp":"1"}`, "", "", KindOrderStatus},
		{"unknown type", env("NEW_THING", "1", `{}`, `"1"`), "", ParkUnknownType, ""},
		{"type is case-sensitive", env("order_create", "1", `{"orderId":"1"}`, `"1"`), "", ParkUnknownType, ""},
		{"order without id", env("ORDER_CANCEL", "1", `{"orderNo":"x"}`, `"1"`), "", ParkMissingOrderID, KindOrderStatus},
		{"order id null", env("ORDER_CANCEL", "1", `{"orderId":null}`, `"1"`), "", ParkMissingOrderID, KindOrderStatus},
		{"order id array", env("ORDER_CANCEL", "1", `{"orderId":[1]}`, `"1"`), "", ParkInvalidBody, KindOrderStatus},
		{"payStatus string", env("ORDER_CANCEL", "1", `{"orderId":"1","payStatus":"2"}`, `"1"`), "", ParkInvalidBody, KindOrderStatus},
		{"amount garbage", env("ORDER_CANCEL", "1", `{"orderId":"1","totalAmount":"ten"}`, `"1"`), "", ParkInvalidBody, KindOrderStatus},
		{"refund without refundId", env("ORDER_BUYER_VIEW_ORDER_BUYER_REFUND", "1", `{"orderId":"2"}`, `"1"`), "", ParkMissingRefundID, KindRefund},
		{"refund without orderId", env("ORDER_BUYER_VIEW_ORDER_BUYER_REFUND", "1", `{"refundId":"2"}`, `"1"`), "", ParkMissingOrderID, KindRefund},

		{"empty", ``, CodeEmptyBody, "", ""},
		{"spaces", " \r\n", CodeEmptyBody, "", ""},
		{"garbage", `hello`, CodeInvalidJSON, "", ""},
		{"truncated", docExample[:100], CodeInvalidJSON, "", ""},
		{"two documents", docExample + docExample, CodeInvalidJSON, "", ""},
		{"bad escape", `{"messageType":"\x"}`, CodeInvalidJSON, "", ""},
		{"leading zero", `{"messagePlatform":01}`, CodeInvalidJSON, "", ""},
		{"array", `[]`, CodeInvalidEnvelope, "", ""},
		{"number", `12`, CodeInvalidEnvelope, "", ""},
		{"type missing", `{"messagePlatform":1,"messageBody":"{}","timestamp":"1"}`, CodeInvalidMessageType, "", ""},
		{"type too long", env(strings.Repeat("A", MaxMessageTypeLen+1), "1", `{}`, `"1"`), CodeInvalidMessageType, "", ""},
		{"type escaped newline", env(`A\nB`, "1", `{}`, `"1"`), CodeInvalidMessageType, "", ""},
		{"platform 2", env("ORDER_CREATE", "2", `{}`, `"1"`), CodeInvalidPlatform, "", ""},
		{"platform -0", env("ORDER_CREATE", "-0", `{}`, `"1"`), CodeInvalidPlatform, "", ""},
		{"platform 1e0", env("ORDER_CREATE", "1e0", `{}`, `"1"`), CodeInvalidPlatform, "", ""},
		{"platform true", env("ORDER_CREATE", "true", `{}`, `"1"`), CodeInvalidPlatform, "", ""},
		{"timestamp empty string", env("ORDER_CREATE", "1", `{}`, `""`), CodeInvalidTimestamp, "", ""},
		{"timestamp with spaces", env("ORDER_CREATE", "1", `{}`, `" 1"`), CodeInvalidTimestamp, "", ""},
		{"timestamp exponent", env("ORDER_CREATE", "1", `{}`, `1e12`), CodeInvalidTimestamp, "", ""},
		{"timestamp object", env("ORDER_CREATE", "1", `{}`, `{}`), CodeInvalidTimestamp, "", ""},
		{"body null", `{"messageType":"X","messagePlatform":1,"messageBody":null,"timestamp":"1"}`, CodeInvalidMessageBody, "", ""},
		{"body string not JSON", env("ORDER_CREATE", "1", `orderId=1`, `"1"`), CodeInvalidMessageBody, "", ""},
		{"body string truncated", env("ORDER_CREATE", "1", `{"orderId":"1"`, `"1"`), CodeInvalidMessageBody, "", ""},
		{"body string holding string", env("ORDER_CREATE", "1", `"x"`, `"1"`), CodeInvalidMessageBody, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev, err := p.Parse([]byte(c.in))
			if c.code != "" {
				var pe *Error
				if !errors.As(err, &pe) || pe.Code != c.code {
					t.Fatalf("Parse(%q) error = %v; want code %s", c.in, err, c.code)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q) error = %v; want an event", c.in, err)
			}
			if ev.Park != c.park || ev.Kind != c.kind {
				t.Errorf("Parse(%q) park, kind = %q, %q (%s); want %q, %q", c.in, ev.Park, ev.Kind, ev.ParkDetail, c.park, c.kind)
			}
			if ev.Parked() != (ev.ParkDetail != "") {
				t.Errorf("park detail %q inconsistent with reason %q", ev.ParkDetail, ev.Park)
			}
			if !ev.Parked() && ev.Order == nil && ev.Refund == nil {
				t.Errorf("accepted event without a typed body")
			}
		})
	}
}

func TestContentIDDedupes(t *testing.T) {
	p := newTestParser(t)
	a := `{"messageType":"ORDER_CREATE","messageBody":"{\"orderId\":\"1\"}","messagePlatform":1,"timestamp":"1779263269913"}`
	same := []string{
		a,
		`{ "timestamp" : 1779263269913 , "messagePlatform":1, "messageBody":"{\"orderId\":\"1\"}", "messageType":"ORDER_CREATE" }`,
		`{"messageType":"ORDER\u005fCREATE","messageBody":"{\u0022orderId\u0022:\"1\"}","messagePlatform":1,"timestamp":"1779263269913","extra":1}`,
	}
	different := []string{
		`{"messageType":"ORDER_CREATE","messageBody":"{\"orderId\":\"2\"}","messagePlatform":1,"timestamp":"1779263269913"}`,
		`{"messageType":"ORDER_CREATE","messageBody":"{\"orderId\":\"1\"}","messagePlatform":0,"timestamp":"1779263269913"}`,
		`{"messageType":"ORDER_CANCEL","messageBody":"{\"orderId\":\"1\"}","messagePlatform":1,"timestamp":"1779263269913"}`,
		`{"messageType":"ORDER_CREATE","messageBody":"{\"orderId\":\"1\"}","messagePlatform":1,"timestamp":"1779263269914"}`,
	}
	id := func(s string) string {
		ev, err := p.Parse([]byte(s))
		if err != nil {
			t.Fatalf("Parse(%s): %v", s, err)
		}
		return ev.ID
	}
	want := id(a)
	for _, s := range same {
		if got := id(s); got != want {
			t.Errorf("ID(%s) = %s; want %s (same push)", s, got, want)
		}
	}
	for _, s := range different {
		if got := id(s); got == want {
			t.Errorf("ID(%s) = %s; want a different ID", s, got)
		}
	}
}

func TestTypedDecodeMatchesEncodingJSON(t *testing.T) {
	bodies := []string{
		`{"orderId":"3305075341149134260","orderNo":"PO1","orderStatus":"CANCEL","payStatus":1,"totalAmount":10000,"shippingFee":"500","productAmount":9550.0,"refundAmount":null,"refundStatus":3,"closeReason":"buyer_cancel","tbCreateTime":"2026-05-20 15:40:00","payTime":"2026-05-20 15:41:00"}`,
		`{"orderId":3305075341149134260,"orderNo":null,"payStatus":null,"closeReason":null,"payTime":null,"refundStatus":true}`,
		`{"orderId":"a\u00e9\ud83d\ude00b","orderNo":"x\"y\\z"}`,
		`{}`,
	}
	for _, b := range bodies {
		var want OrderBody
		if err := json.Unmarshal([]byte(b), &want); err != nil {
			t.Fatalf("encoding/json(%s): %v", b, err)
		}
		got, err := DecodeOrderBody([]byte(b))
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("DecodeOrderBody(%s) = %+v, %v; want %+v", b, got, err, want)
		}
	}
	rb := `{"refundId":"TQ1","orderId":2,"subOrderId":"3","refundStatus":"WAIT","refundAmount":"1240"}`
	var want RefundBody
	if err := json.Unmarshal([]byte(rb), &want); err != nil {
		t.Fatal(err)
	}
	if got, err := DecodeRefundBody([]byte(rb)); err != nil || got != want {
		t.Errorf("DecodeRefundBody(%s) = %+v, %v; want %+v", rb, got, err, want)
	}
}

func TestTypeNames(t *testing.T) {
	for _, bad := range []TypeNames{{PlatformTaobao: {"A.B": KindRefund}}, {PlatformTaobao: {"X": "refunds"}}, {Platform1688: {"": KindRefund}}} {
		if _, err := NewParser(bad); err == nil {
			t.Errorf("NewParser(%v) = nil error; want an error", bad)
		}
	}
	if _, err := NewParser(TypeNames{Platform(7): {"X": KindRefund}}); err == nil {
		t.Error("NewParser with platform 7: want an error")
	}

	// Overrides: a Taobao-specific name is known on Taobao only.
	p, err := NewParser(TypeNames{PlatformTaobao: {"TB_REFUND": KindRefund}, Platform1688: DefaultTypeNames()[Platform1688]})
	if err != nil {
		t.Fatal(err)
	}
	body := `"messageBody":"{\"refundId\":\"1\",\"orderId\":\"2\"}","timestamp":"1"`
	if ev, err := p.Parse([]byte(`{"messageType":"TB_REFUND","messagePlatform":0,` + body + `}`)); err != nil || ev.Parked() || ev.Kind != KindRefund {
		t.Errorf("TB_REFUND on taobao = %+v, %v; want accepted refund", ev, err)
	}
	if ev, err := p.Parse([]byte(`{"messageType":"TB_REFUND","messagePlatform":1,` + body + `}`)); err != nil || ev.Park != ParkUnknownType {
		t.Errorf("TB_REFUND on 1688 = %+v, %v; want parked unknown_type", ev, err)
	}
}

// TestTypeNamesFromProfile: the receiver's table is the profile's, so a
// profile that names a Taobao type makes it known on Taobao only.
func TestTypeNamesFromProfile(t *testing.T) {
	prof, err := platform.Parse([]byte("[callbacks.taobao]\ntypes = { TB_REFUND = \"refund\" }\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	names := TypeNamesFromProfile(prof)
	if names[PlatformTaobao]["TB_REFUND"] != KindRefund || names[Platform1688]["TB_REFUND"] != "" {
		t.Errorf("names = %v; want TB_REFUND on Taobao only", names)
	}
	if names[Platform1688][TypeOrderRefund] != KindRefund || names[PlatformTaobao][TypeOrderRefund] != KindRefund {
		t.Errorf("names = %v; want the default types kept (a table merges key by key)", names)
	}
}

// TestPlain8MatchesTable: the eight-byte check agrees with the byte table
// for every byte value in every position.
func TestPlain8MatchesTable(t *testing.T) {
	var b [8]byte
	for i := range b {
		b[i] = 'a'
	}
	for pos := range 8 {
		for c := range 256 {
			w := b
			w[pos] = byte(c)
			want := true
			for _, x := range w {
				want = want && plain[x]
			}
			x := uint64(0)
			for i := 7; i >= 0; i-- {
				x = x<<8 | uint64(w[i])
			}
			if got := plain8(x); got != want {
				t.Fatalf("plain8(% x) = %v; want %v", w, got, want)
			}
		}
	}
}

// TestBodyDecodeMatchesEncodingJSON: messageBody is decoded while it is
// validated; escapes, surrogates (paired, lone, broken) and invalid UTF-8
// must come out as encoding/json decodes them.
func TestBodyDecodeMatchesEncodingJSON(t *testing.T) {
	p := newTestParser(t)
	for _, lit := range []string{
		`"{\"orderId\":\"1\"}"`,
		`"{\"a\":\"\\u00e9\\n\\t\\\\\\/\"}"`,
		`"{\"a\":\"\ud83d\ude00\"}"`,
		`"{\"a\":\"\ud83d\"}"`,
		`"{\"a\":\"\ud83d\u0041\"}"`,
		`"{\"a\":\"\ude00\ud83d\"}"`,
		"\"{\\\"a\\\":\\\"\xff\xfe\xc3\xa9\\\"}\"",
		`"{\"a\":\"\b\f\r\/\"}"`,
	} {
		raw := `{"messageType":"X","messagePlatform":1,"timestamp":"1","messageBody":` + lit + `}`
		var want string
		if err := json.Unmarshal([]byte(lit), &want); err != nil {
			t.Fatalf("encoding/json(%s): %v", lit, err)
		}
		ev, err := p.Parse([]byte(raw))
		if err != nil {
			if !json.Valid([]byte(want)) {
				continue // not an object: rejected, as it should be
			}
			t.Fatalf("Parse(%s): %v", raw, err)
		}
		if ev.Body != want {
			t.Errorf("Parse(%s) body = %q; want %q", raw, ev.Body, want)
		}
	}
}

// TestParseTimestampLeadingZeros: a timestamp is "a string of digits"; the
// number of digits is not a rule, only the value's range is. The scanner
// used to refuse more than 19 digits before looking at the value, so
// "000…01" (1 ms) was invalid_timestamp. Found by FuzzParseMatchesReference.
func TestParseTimestampLeadingZeros(t *testing.T) {
	p := newTestParser(t)
	for _, c := range []struct {
		ts   string
		want int64 // -1: invalid_timestamp
	}{
		{`"00000000000000000000001"`, 1},
		{`"0000000000000000000009223372036854775807"`, 9223372036854775807},
		{`"9223372036854775807"`, 9223372036854775807},
		{`"9223372036854775808"`, -1},
		{`"00000000000000000000009223372036854775808"`, -1},
		{`9223372036854775808`, -1},
	} {
		raw := `{"messageType":"X","messageBody":"{}","messagePlatform":1,"timestamp":` + c.ts + `}`
		ev, err := p.Parse([]byte(raw))
		if c.want < 0 {
			var pe *Error
			if !errors.As(err, &pe) || pe.Code != CodeInvalidTimestamp {
				t.Errorf("Parse(timestamp %s) = %d, %v; want invalid_timestamp", c.ts, ev.TimestampMS, err)
			}
			continue
		}
		if err != nil || ev.TimestampMS != c.want {
			t.Errorf("Parse(timestamp %s) = %d, %v; want %d", c.ts, ev.TimestampMS, err, c.want)
		}
	}
}

// TestTypeNameCharacters: a configured type name is a NATS subject token
// of 1-MaxMessageTypeLen letters, digits, '_' and '-'; the characters next
// to each range are refused.
func TestTypeNameCharacters(t *testing.T) {
	for _, name := range []string{"A", "Z", "a", "z", "0", "9", "_", "-", "Az09_-", strings.Repeat("x", MaxMessageTypeLen)} {
		if _, err := NewParser(TypeNames{Platform1688: {name: KindRefund}}); err != nil {
			t.Errorf("NewParser with type %q: %v; want it accepted", name, err)
		}
	}
	for _, name := range []string{"@", "[", "`", "{", "/", ":", ".", "*", ">", "é", "A\x00", strings.Repeat("x", MaxMessageTypeLen+1)} {
		if _, err := NewParser(TypeNames{PlatformTaobao: {name: KindRefund}}); err == nil {
			t.Errorf("NewParser with type %q = nil error; want it refused", name)
		}
	}
}

// TestRejectionQuotesAShortPrefix: a rejection quotes at most 24 bytes of
// the offending value, with "…" when it cut.
func TestRejectionQuotesAShortPrefix(t *testing.T) {
	p := newTestParser(t)
	digits := "123456789012345678901234567890"
	for _, c := range []struct{ platform, want string }{
		{digits[:23], `got "` + digits[:23] + `"`},
		{digits[:24], `got "` + digits[:24] + `"`},
		{digits[:25], `got "` + digits[:24] + `"…`},
	} {
		_, err := p.Parse([]byte(`{"messageType":"X","messageBody":"{}","timestamp":"1","messagePlatform":` + c.platform + `}`))
		var pe *Error
		if !errors.As(err, &pe) || pe.Code != CodeInvalidPlatform || !strings.HasSuffix(pe.Message, c.want) {
			t.Errorf("Parse(platform %s) = %v; want invalid_platform ending %s", c.platform, err, c.want)
		}
	}
}

// TestShortErr: a park detail travels in a message header, so the error in
// it is cut to 120 bytes and its control characters and invalid UTF-8 are
// replaced; printable text, spaces included, is kept.
func TestShortErr(t *testing.T) {
	x120 := strings.Repeat("x", 120)
	for _, c := range []struct{ in, want string }{
		{x120, x120},
		{x120 + "y", x120 + "…"},
		{"a\x00b\x1fc\x7fd e~\u00e9", "a b c d e~\u00e9"},
		{"bad \xff byte", "bad ? byte"},
	} {
		if got := shortErr(errors.New(c.in)); got != c.want {
			t.Errorf("shortErr(%q) = %q; want %q", c.in, got, c.want)
		}
	}
}
