package callback

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"unicode/utf8"
)

// FuzzParse checks that Parse never panics and that its verdicts are
// consistent: the same input always gives the same answer; a rejection
// always carries a known code, and invalid_json only for input encoding/json
// also rejects (or nests deeper than the scanner allows); an accepted or
// parked event satisfies the envelope rules and gets the same ID and verdict
// when the envelope is re-serialised by encoding/json.
//
// Seeds: f.Add below and testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		docExample,
		`{"messageType":"ORDER_BUYER_VIEW_ORDER_BUYER_REFUND","messageBody":"{\"refundId\":\"TQxxxxxxxxxxxx\",\"orderId\":\"3296711100591134260\"}","messagePlatform":1,"timestamp":"1779263269913"}`,
		`{"messageType":"ORDER_CANCEL","messageBody":"{\"orderId\":3296711100591134260,\"totalAmount\":\"1.5\"}","messagePlatform":0,"timestamp":1779263269913}`,
		`{"messageType":"X","messageBody":"{}","messagePlatform":1,"timestamp":"0"}`,
		`{"messageType":"ORDER_CREATE","messageBody":"{\"orderId\":{}}","messagePlatform":1,"timestamp":"1"}`,
		`{"messageType":"\u00e9\ud800","messageBody":"{\"a\":\"\\ud83d\\ude00\"}","messagePlatform":0,"timestamp":"1"}`,
		`{"messageType":"ORDER_CREATE","messageBody":"[1]","messagePlatform":2,"timestamp":"1"}`,
		`[{"messageType":"ORDER_CREATE"}]`,
		`{"messageType":"ORDER_CREATE","messageBody":"{\"orderId\":\"1\"`,
		``, `null`, `{}`, `{"a":[[[[[]]]]]}`, "{\"messageType\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	p, err := NewParser(DefaultTypeNames())
	if err != nil {
		f.Fatal(err)
	}
	known := map[Code]bool{CodeEmptyBody: true, CodeInvalidJSON: true, CodeInvalidEnvelope: true, CodeInvalidMessageType: true,
		CodeInvalidMessageBody: true, CodeInvalidPlatform: true, CodeInvalidTimestamp: true}
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, err := p.Parse(raw)
		ev2, err2 := p.Parse(raw)
		if (err == nil) != (err2 == nil) || ev.ID != ev2.ID || ev.Park != ev2.Park {
			t.Fatalf("Parse(%q) not deterministic: %v / %v", raw, err, err2)
		}
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || !known[pe.Code] || pe.Message == "" {
				t.Fatalf("Parse(%q) error %v: want a *Error with a known code", raw, err)
			}
			if pe.Code == CodeInvalidJSON && json.Valid(raw) && bytes.Count(raw, []byte("["))+bytes.Count(raw, []byte("{")) <= maxDepth {
				t.Fatalf("Parse(%q) = invalid_json but encoding/json accepts it", raw)
			}
			return
		}
		if !json.Valid(raw) {
			t.Fatalf("Parse(%q) accepted invalid JSON", raw)
		}
		if ev.Platform != PlatformTaobao && ev.Platform != Platform1688 {
			t.Fatalf("platform %d", ev.Platform)
		}
		if ev.Type == "" || len(ev.Type) > MaxMessageTypeLen || !utf8.ValidString(ev.Type) || ev.TimestampMS < 0 {
			t.Fatalf("bad event fields %+v", ev)
		}
		if !json.Valid([]byte(ev.Body)) || ev.Body[firstNonWSIndex(ev.Body)] != '{' {
			t.Fatalf("body %q is not a JSON object", ev.Body)
		}
		// The body is decoded while it is validated (strAppend); it must be
		// what encoding/json makes of the last messageBody member.
		var members map[string]json.RawMessage
		var wantBody string
		if err := json.Unmarshal(raw, &members); err != nil || json.Unmarshal(members["messageBody"], &wantBody) != nil || ev.Body != wantBody {
			t.Fatalf("Parse(%q) body = %q; encoding/json decodes %q (%v)", raw, ev.Body, wantBody, err)
		}
		if ev.ID != ContentID(ev.Platform, ev.Type, ev.TimestampMS, ev.Body) || len(ev.ID) != 32 {
			t.Fatalf("ID %q does not match the content", ev.ID)
		}
		if ev.Parked() == (ev.Park == "") || (!ev.Parked() && ev.Kind == "") {
			t.Fatalf("inconsistent verdict %+v", ev)
		}
		// Re-serialised by encoding/json (timestamp as a number): same ID, same verdict.
		re, err := json.Marshal(map[string]any{"messageType": ev.Type, "messageBody": ev.Body,
			"messagePlatform": int(ev.Platform), "timestamp": json.Number(strconv.FormatInt(ev.TimestampMS, 10))})
		if err != nil {
			t.Fatal(err)
		}
		ev3, err := p.Parse(re)
		if err != nil || ev3.ID != ev.ID || ev3.Park != ev.Park || ev3.Kind != ev.Kind {
			t.Fatalf("re-serialised %s: %+v, %v; want ID %s park %q", re, ev3, err, ev.ID, ev.Park)
		}
	})
}

func firstNonWSIndex(s string) int {
	for i := 0; i < len(s); i++ {
		if !isWS(s[i]) {
			return i
		}
	}
	return 0
}
