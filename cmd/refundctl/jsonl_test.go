package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/refundhub/refundhub/internal/callback"
	"github.com/refundhub/refundhub/internal/events"
)

const sampleEnvelope = `{"messageType":"ORDER_PAY_SUCCESS","messageBody":"{\"orderId\":\"3305075341149134260\",\"orderStatus\":\"WAITING_FOR_SENT\",\"payStatus\":2}","messagePlatform":1,"timestamp":"1779263269913"}`

func newParser(t testing.TB) *callback.Parser {
	t.Helper()
	p, err := callback.NewParser(callback.DefaultTypeNames())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseJSONL(t *testing.T) {
	p := newParser(t)
	tests := []struct {
		name      string
		in        string
		wantLines []int
		wantErr   string
	}{
		{"empty", "", nil, ""},
		{"blank lines only", "\n \r\n\t\n", nil, ""},
		{"one without newline", sampleEnvelope, []int{1}, ""},
		{"crlf and blanks", "\r\n" + sampleEnvelope + "\r\n\r\n" + sampleEnvelope + "\n", []int{2, 4}, ""},
		{"bom", "\xef\xbb\xbf" + sampleEnvelope + "\n", []int{1}, ""},
		{"not json", sampleEnvelope + "\nhello\n", nil, "line 2: invalid_json"},
		{"array", "[1]\n", nil, "line 1: invalid_envelope"},
		{"two objects on a line", sampleEnvelope + " " + sampleEnvelope, nil, "line 1: invalid_json"},
		{"pretty-printed", "{\n\"messageType\": \"ORDER_CREATE\"\n}\n", nil, "line 1: invalid_json"},
		{"missing body", `{"messageType":"ORDER_CREATE","messagePlatform":1,"timestamp":"1"}`, nil, "line 1: invalid_message_body"},
		{"too long", strings.Repeat(" ", maxLineBytes+10) + "\n", nil, "line 1: longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, err := parseJSONL(strings.NewReader(tt.in), p)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseJSONL error = %v; want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseJSONL: %v", err)
			}
			var lines []int
			for _, r := range recs {
				lines = append(lines, r.Line)
				if string(r.Raw) != sampleEnvelope || r.Subject != "callbacks.1688.ORDER_PAY_SUCCESS" || len(r.Event.ID) != 32 {
					t.Errorf("record %+v", r)
				}
			}
			if len(lines) != len(tt.wantLines) || (len(lines) > 0 && !equalIDs(toInt64(lines), toInt64(tt.wantLines))) {
				t.Errorf("lines = %v; want %v", lines, tt.wantLines)
			}
		})
	}
}

func toInt64(v []int) []int64 {
	out := make([]int64, len(v))
	for i, x := range v {
		out[i] = int64(x)
	}
	return out
}

// FuzzParseJSONL: any input either fails with a line-numbered error or
// yields records that are valid JSON envelopes with an id and a subject,
// each on its own line in order; never a panic.
func FuzzParseJSONL(f *testing.F) {
	f.Add([]byte(sampleEnvelope + "\n" + sampleEnvelope))
	f.Add([]byte("\xef\xbb\xbf" + sampleEnvelope + "\r\n\n"))
	f.Add([]byte(`{"messageType":"X","messageBody":"{}","messagePlatform":0,"timestamp":1}` + "\n"))
	f.Add([]byte(`{"messageType":"ORDER_BUYER_VIEW_ORDER_BUYER_REFUND","messageBody":"{\"refundId\":\"TQ1\",\"orderId\":\"1\"}","messagePlatform":1,"timestamp":"1"}`))
	f.Add([]byte("\n\n\n"))
	f.Add([]byte("{\"a\":\n1}"))
	f.Add([]byte{0xff, '\n', '{'})
	p := newParser(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := parseJSONL(bytes.NewReader(data), p)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "line ") {
				t.Fatalf("error without a line number: %v", err)
			}
			var ce *callback.Error
			if !errors.As(err, &ce) && !strings.Contains(err.Error(), "longer than") {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		last := 0
		for _, r := range recs {
			if r.Line <= last {
				t.Fatalf("line %d after %d", r.Line, last)
			}
			last = r.Line
			if !json.Valid(r.Raw) || len(r.Event.ID) != 32 || r.Subject == "" || bytes.ContainsAny(r.Raw, "\n") {
				t.Fatalf("bad record %+v", r)
			}
			if !events.ValidSubjectFilter(r.Subject) || strings.ContainsAny(r.Subject, "*>") {
				t.Fatalf("record subject %q is not a publishable subject", r.Subject)
			}
		}
	})
}

func TestValidSubjectFilter(t *testing.T) {
	for s, want := range map[string]bool{
		"callbacks.>": true, "callbacks.*.ORDER_CREATE": true, ">": true, "parked.callbacks.taobao": true,
		"": false, "callbacks.": false, ".x": false, "a..b": false, "a.>.b": false, "a.b*": false, "a b": false, "a.>>": false,
	} {
		if got := events.ValidSubjectFilter(s); got != want {
			t.Errorf("events.ValidSubjectFilter(%q) = %v; want %v", s, got, want)
		}
	}
}

func TestErrorLineAndExitCode(t *testing.T) {
	if got := errorLine(errors.Join(errors.New("a: bad"), errors.New("  b: worse\n\n"))); got != "a: bad; b: worse" {
		t.Errorf("errorLine = %q", got)
	}
	for _, tt := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{usagef("x"), 2},
		{&runtimeError{err: errors.New("x")}, 1},
		{errors.New("cobra: unknown flag"), 2},
	} {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("exitCode(%v) = %d; want %d", tt.err, got, tt.want)
		}
	}
}
