package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/refundflow"
)

func TestCommandsPublish(t *testing.T) {
	e := newEnv(t)
	idRE := regexp.MustCompile(`^cmd-[0-9a-f]{24}$`)
	tests := []struct {
		name    string
		args    []string
		subject string
		check   func(t *testing.T, c refundflow.Command)
	}{
		{
			name: "request taobao",
			args: []string{"request", "--platform", "taobao", "--order", "3305075341149134260", "--sub-order", "3305075341149134261",
				"--type", "return", "--goods-status", "3", "--reason-id", "7", "--amount", "0", "--description", "broken",
				"--voucher", "https://img.example/1.jpg", "--voucher", "https://img.example/2.jpg"},
			subject: "commands.taobao.request_refund",
			check: func(t *testing.T, c refundflow.Command) {
				want := refundflow.Request{ReturnGoods: true, GoodsStatus: "3", ReasonID: 7, Description: "broken",
					Vouchers: []string{"https://img.example/1.jpg", "https://img.example/2.jpg"}}
				if c.Request == nil || !reflect.DeepEqual(*c.Request, want) {
					t.Errorf("request = %+v; want %+v", c.Request, want)
				}
				if c.OrderID != "3305075341149134260" || c.SubOrderID != "3305075341149134261" {
					t.Errorf("order/sub-order = %s/%s", c.OrderID, c.SubOrderID)
				}
			},
		},
		{
			name: "request 1688",
			args: []string{"request", "--platform", "1688", "--order", "3305075341149134260", "--goods-status", "refundWaitSellerSend",
				"--reason", "quality problem", "--amount", "9500", "--carriage", "500", "--description", "arrived broken", "--order-entry", "11"},
			subject: "commands.1688.request_refund",
			check: func(t *testing.T, c refundflow.Command) {
				want := refundflow.Request{GoodsStatus: "refundWaitSellerSend", Reason: "quality problem", Amount: 9500,
					Carriage: 500, Description: "arrived broken", OrderEntryIDs: []int64{11}}
				if c.Request == nil || !reflect.DeepEqual(*c.Request, want) {
					t.Errorf("request = %+v; want %+v", c.Request, want)
				}
			},
		},
		{
			name:    "ship",
			args:    []string{"ship", "--platform", "taobao", "--case", "12", "--company", "SF", "--waybill", "SF123", "--phone", "13800000000"},
			subject: "commands.taobao.report_shipment",
			check: func(t *testing.T, c refundflow.Command) {
				want := refundflow.Shipment{Company: "SF", Waybill: "SF123", Phone: "13800000000"}
				if c.CaseID != 12 || c.Shipment == nil || *c.Shipment != want {
					t.Errorf("case %d shipment %+v; want 12 %+v", c.CaseID, c.Shipment, want)
				}
			},
		},
		{
			name:    "cancel",
			args:    []string{"cancel", "--platform", "1688", "--order", "42"},
			subject: "commands.1688.cancel",
			check: func(t *testing.T, c refundflow.Command) {
				if c.OrderID != "42" || c.Request != nil || c.Shipment != nil {
					t.Errorf("cancel command = %+v", c)
				}
			},
		},
		{
			name:    "message",
			args:    []string{"message", "--platform", "taobao", "--sub-order", "77", "--text", "photos attached", "--operator", "alice"},
			subject: "commands.taobao.send_message",
			check: func(t *testing.T, c refundflow.Command) {
				if c.Message != "photos attached" || c.Operator != "alice" {
					t.Errorf("message %q operator %q", c.Message, c.Operator)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.mustRun(append(tt.args, "--no-wait")...)
			id := strings.TrimSpace(r.stdout)
			if !idRE.MatchString(id) {
				t.Fatalf("stdout = %q; want a command id", r.stdout)
			}
			m := e.lastMsg(events.DefaultCommandStreamName, tt.subject+".>")
			if got := m.Header.Get(events.HeaderMsgID); got != id {
				t.Errorf("Nats-Msg-Id = %q; want %q", got, id)
			}
			c, err := refundflow.DecodeCommand(m.Data)
			if err != nil {
				t.Fatalf("stored payload does not decode: %v\n%s", err, m.Data)
			}
			if want := events.CommandSubject(string(c.Platform), string(c.Kind), refundflow.OrderKey(m.Data)); m.Subject != want {
				t.Errorf("stored on %s; want %s (its case's token last)", m.Subject, want)
			}
			if c.ID != id || string(c.Kind) != m.Header.Get(events.HeaderCommandKind) || c.IssuedAt.IsZero() {
				t.Errorf("command id %q kind %q (header %q) issuedAt %v", c.ID, c.Kind, m.Header.Get(events.HeaderCommandKind), c.IssuedAt)
			}
			if c.Operator == "" || m.Header.Get(events.HeaderCommandIssuer) != c.Operator {
				t.Errorf("operator %q, header %q", c.Operator, m.Header.Get(events.HeaderCommandIssuer))
			}
			tt.check(t, c)
		})
	}
}

func TestCommandJSONAndDuplicateID(t *testing.T) {
	e := newEnv(t)
	args := []string{"cancel", "--platform", "taobao", "--sub-order", "5", "--id", "op-retry-0001", "--no-wait", "--json"}
	var first commandResult
	decodeJSON(t, e.mustRun(args...).stdout, &first)
	if first.ID != "op-retry-0001" || first.Subject != "commands.taobao.cancel.taobao_5" || first.Stream != events.DefaultCommandStreamName ||
		first.Sequence != 1 || first.Duplicate || first.Command.Kind != refundflow.InputCancel || first.Command.SubOrderID != "5" {
		t.Errorf("first publish = %+v", first)
	}
	var second commandResult
	decodeJSON(t, e.mustRun(args...).stdout, &second)
	if !second.Duplicate || second.Sequence != 1 {
		t.Errorf("second publish with the same id = %+v; want duplicate of seq 1", second)
	}
	if n := e.streamCount(events.DefaultCommandStreamName); n != 1 {
		t.Errorf("COMMANDS holds %d messages; want 1", n)
	}
	human := e.mustRun("cancel", "--platform", "taobao", "--sub-order", "5", "--id", "op-retry-0001", "--no-wait")
	if !strings.Contains(human.stdout, "op-retry-0001 (duplicate") {
		t.Errorf("human duplicate output = %q", human.stdout)
	}
}

func TestCommandErrors(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name string
		code int
		want string
		args []string
	}{
		{"unknown platform", 2, `platform "amazon": want taobao or 1688`, []string{"cancel", "--platform", "amazon", "--order", "1"}},
		{"missing platform", 2, "--platform: required (taobao or 1688), unless --case names the case", []string{"cancel", "--order", "1"}},
		{"taobao without sub-order", 2, "--sub-order: required for Taobao", []string{"cancel", "--platform", "taobao", "--order", "1"}},
		{"malformed order", 2, "--order: digits only", []string{"cancel", "--platform", "1688", "--order", "12ab"}},
		{"negative case", 2, "--case -3: must be positive", []string{"cancel", "--platform", "1688", "--case", "-3"}},
		{"malformed case flag", 2, `invalid argument "x" for "--case"`, []string{"cancel", "--platform", "1688", "--case", "x"}},
		{"bad id", 2, "invalid cancel command: --id: 8 to 64 characters", []string{"cancel", "--platform", "1688", "--order", "1", "--id", "a b"}},
		{"bad type", 2, `--type "swap": want refund or return`, []string{"request", "--platform", "1688", "--order", "1", "--type", "swap", "--goods-status", "refundWaitSellerSend", "--reason-id", "1", "--amount", "1", "--description", "ok"}},
		{"bad goods status", 2, `--goods-status "9": want 1, 2 or 3`, []string{"request", "--platform", "taobao", "--sub-order", "1", "--goods-status", "9", "--reason-id", "1"}},
		{"no reason", 2, "--reason-id or --reason: give one", []string{"request", "--platform", "taobao", "--sub-order", "1", "--goods-status", "1"}},
		{"taobao request without order", 2, "--order: required for a Taobao request_refund, besides --sub-order", []string{"request", "--platform", "taobao", "--sub-order", "1", "--goods-status", "1", "--reason-id", "1"}},
		{"1688 with a sub-order", 2, "--sub-order: 1688 cases are one per order; leave it out", []string{"request", "--platform", "1688", "--order", "1", "--sub-order", "42", "--goods-status", "refundWaitSellerSend", "--reason-id", "1", "--amount", "1", "--description", "ok"}},
		{"1688 cancel with a sub-order", 2, "--sub-order: 1688 cases are one per order", []string{"cancel", "--platform", "1688", "--order", "1", "--sub-order", "42"}},
		{"1688 no amount", 2, "--amount: required for 1688", []string{"request", "--platform", "1688", "--order", "1", "--goods-status", "refundWaitSellerSend", "--reason-id", "1", "--description", "ok"}},
		{"amount not a number", 2, `--amount "12.5": want fen (a whole number, e.g. 9500 for 95.00) or max`, []string{"request", "--platform", "taobao", "--sub-order", "1", "--goods-status", "1", "--reason-id", "1", "--amount", "12.5"}},
		{"ship without waybill", 2, `required flag(s) "waybill" not set`, []string{"ship", "--platform", "taobao", "--case", "1", "--company", "SF"}},
		{"ship blank company", 2, "--company: 1 to 64 printable", []string{"ship", "--platform", "taobao", "--case", "1", "--company", " ", "--waybill", "1"}},
		{"empty message", 2, "--text: 1 to 500", []string{"message", "--platform", "taobao", "--case", "1", "--text", ""}},
		{"unknown flag", 2, "unknown flag: --colour", []string{"cancel", "--platform", "taobao", "--case", "1", "--colour"}},
		{"stray argument", 2, `CASE "now": want a case id`, []string{"cancel", "now", "--platform", "taobao", "--case", "1"}},
		{"unknown command", 2, `unknown command "refnd"`, []string{"refnd"}},
		{"amount max on 1688", 2, "--amount max: Taobao only", []string{"request", "--platform", "1688", "--order", "1", "--goods-status", "refundWaitSellerSend", "--reason-id", "1", "--amount", "max", "--description", "ok"}},
		{"negative amount", 2, `--amount "-5": want fen`, []string{"request", "--platform", "taobao", "--order", "1", "--sub-order", "1", "--goods-status", "1", "--reason-id", "1", "--amount", "-5"}},
		{"1688 description too short", 2, "--description: 2 to 150 characters on 1688", []string{"request", "--platform", "1688", "--order", "1", "--goods-status", "refundWaitSellerSend", "--reason-id", "1", "--amount", "1", "--description", "x"}},
		{"1688 return before receipt", 2, "--type return: only once the goods were received", []string{"request", "--platform", "1688", "--order", "1", "--type", "return", "--goods-status", "refundWaitSellerSend", "--reason-id", "1", "--amount", "1", "--description", "ok"}},
		{"case without store", 1, "no case store at", []string{"cancel", "--case", "1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.wantErr(tt.code, tt.want, tt.args...)
		})
	}
	if n := e.streamCount(events.DefaultCommandStreamName); n != 0 {
		t.Errorf("COMMANDS holds %d messages after bad input; want 0", n)
	}
}

func TestCommandNATSFailures(t *testing.T) {
	e := newEnv(t)
	e.vars["NATS_URL"] = "nats://127.0.0.1:1"
	e.wantErr(1, "connect to NATS at nats://127.0.0.1:1", "cancel", "--platform", "taobao", "--case", "1", "--no-wait", "--timeout", "2s")

	e.vars["NATS_URL"] = "nats://user:hunter2@127.0.0.1:1"
	r := e.wantErr(1, "connect to NATS at nats://127.0.0.1:1", "cancel", "--platform", "taobao", "--case", "1", "--no-wait")
	if strings.Contains(r.line(), "hunter2") {
		t.Errorf("error shows the NATS password: %s", r.line())
	}
	// Every node of a cluster listed (docs/production.md), and passwords
	// that do not parse as a URL's: no password is shown.
	for _, urls := range []string{
		"nats://user:hunter2@127.0.0.1:1,nats://user:hunter3@127.0.0.1:2",
		"nats://user:hun/ter2@127.0.0.1:1",
		"nats://user:hunter2#x@127.0.0.1:1",
		"nats://user:hunter2%zz@127.0.0.1:1",
	} {
		e.vars["NATS_URL"] = urls
		r := e.wantErr(1, "connect to NATS at ", "cancel", "--platform", "taobao", "--case", "1", "--no-wait", "--timeout", "2s")
		if strings.Contains(r.line(), "hunter") || strings.Contains(r.stderr, "hunter") {
			t.Errorf("NATS_URL %s: the error shows a password: %s", urls, r.line())
		}
	}

	// A server without the COMMANDS stream: nothing takes the subject.
	e2 := newEnv(t)
	if err := e2.js.DeleteStream(t.Context(), events.DefaultCommandStreamName); err != nil {
		t.Fatal(err)
	}
	e2.wantErr(1, "no JetStream stream takes this subject", "cancel", "--platform", "taobao", "--case", "1", "--no-wait", "--timeout", "2s")
}

// TestURLsThatDoNotParseAreNotShownWithTheirPassword: a console or receiver
// URL whose password holds "/" or "#" does not parse; the usage error names
// what is wrong without the password (it showed the URL as given).
func TestURLsThatDoNotParseAreNotShownWithTheirPassword(t *testing.T) {
	e := newEnv(t)
	for _, bad := range []string{"http://olga:pa/ss@console.example:8080", "http://olga:pa#ss@console.example:8080",
		// These parse, wrongly: the "@" and the secret land in the path.
		"http://olga:/pass@console.example:8080", "http://AbC+dE/pa/ss@console.example:8080"} {
		e.vars["REFUNDHUB_URL"], e.vars["REFUNDHUB_TOKEN"] = bad, "t0ken"
		r := e.wantErr(2, "REFUNDHUB_URL", "list")
		if strings.Contains(r.line(), "pa/ss") || strings.Contains(r.line(), "pa#ss") || strings.Contains(r.line(), "olga") ||
			strings.Contains(r.line(), "/pass") || strings.Contains(r.line(), "AbC") || !strings.Contains(r.line(), "console.example:8080") {
			t.Errorf("REFUNDHUB_URL %s: %s; want the host named, not the user or the password", bad, r.line())
		}
		delete(e.vars, "REFUNDHUB_URL")
		e.vars["RECEIVER_URL"] = bad
		r = e.wantErr(2, "receiver URL", "trigger", "create", "--platform", "1688", "--order", "1")
		if strings.Contains(r.line(), "pa/ss") || strings.Contains(r.line(), "pa#ss") || strings.Contains(r.line(), "olga") ||
			strings.Contains(r.line(), "/pass") || strings.Contains(r.line(), "AbC") {
			t.Errorf("RECEIVER_URL %s: %s; want no user or password", bad, r.line())
		}
	}
}

// TestACommandWhosePublishIsNotConfirmedIsNamed: the publish of a command
// gets no answer in time (something takes the subject, JetStream does not
// confirm): the command may be stored. The error names its id and says to
// send it again under that id (stored once) or to follow it; before, the
// operator had exit 1 and no id, and a second try under a new id could
// apply it twice. Through the console, an answer lost after the command
// was sent says the same.
func TestACommandWhosePublishIsNotConfirmedIsNamed(t *testing.T) {
	e := newEnv(t)
	if err := e.js.DeleteStream(t.Context(), events.DefaultCommandStreamName); err != nil {
		t.Fatal(err)
	}
	sub, err := e.nc.Subscribe("commands.>", func(*nats.Msg) {}) // takes it, never confirms
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	r := e.wantErr(1, "command cmd-unconfirmed-1 may have been stored", "cancel", "--platform", "taobao", "--case", "1", "--no-wait",
		"--timeout", "300ms", "--id", "cmd-unconfirmed-1")
	if !strings.Contains(r.line(), "--id cmd-unconfirmed-1") || !strings.Contains(r.line(), "refundctl wait --command cmd-unconfirmed-1") {
		t.Errorf("unconfirmed publish: %s; want how to send it again and how to follow it", r.line())
	}
	// A command with no stream for it is certainly not stored: no id.
	e2 := newEnv(t)
	if err := e2.js.DeleteStream(t.Context(), events.DefaultCommandStreamName); err != nil {
		t.Fatal(err)
	}
	r = e2.wantErr(1, "no JetStream stream takes this subject", "cancel", "--platform", "taobao", "--case", "1", "--no-wait",
		"--timeout", "2s", "--id", "cmd-unstored-1")
	if strings.Contains(r.line(), "may have been stored") {
		t.Errorf("a publish no stream took: %s; want it not called possibly stored", r.line())
	}

	// Through the console: the POST is read, and the connection closed
	// before any answer.
	lost := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.ReadAll(req.Body)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	}))
	defer lost.Close()
	r = e.remoteRun(lost.URL, consoleOperatorToken, "cancel", "--case", "1", "--platform", "taobao", "--no-wait", "--id", "cmd-unconfirmed-2")
	if r.code() != 1 || !strings.Contains(r.line(), "command cmd-unconfirmed-2 may have been stored") {
		t.Errorf("console answer lost: exit %d (%s); want exit 1 naming the command as possibly stored", r.code(), r.line())
	}
	// The console answers that JetStream did not confirm it.
	unconfirmed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.ReadAll(req.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusGatewayTimeout)
		_, _ = io.WriteString(w, `{"error":{"code":"unconfirmed","message":"command cmd-unconfirmed-4 was sent and its storing was not confirmed in time"}}`)
	}))
	defer unconfirmed.Close()
	r = e.remoteRun(unconfirmed.URL, consoleOperatorToken, "cancel", "--case", "1", "--platform", "taobao", "--no-wait", "--id", "cmd-unconfirmed-4")
	if r.code() != 1 || !strings.Contains(r.line(), "command cmd-unconfirmed-4 may have been stored: send it again with --id cmd-unconfirmed-4") {
		t.Errorf("console unconfirmed: exit %d (%s); want exit 1 naming the command as possibly stored", r.code(), r.line())
	}
	// A console that cannot be reached was sent nothing.
	r = e.remoteRun("http://127.0.0.1:1", consoleOperatorToken, "cancel", "--case", "1", "--platform", "taobao", "--no-wait", "--id", "cmd-unsent-3")
	if r.code() != 1 || strings.Contains(r.line(), "may have been stored") {
		t.Errorf("console unreachable: exit %d (%s); want exit 1, not called possibly stored", r.code(), r.line())
	}
	// Nor one whose TLS handshake fails (a certificate refundctl does not
	// trust): the request never left. (It was called possibly stored.)
	var reached atomic.Bool
	untrusted := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached.Store(true) }))
	defer untrusted.Close()
	r = e.remoteRun(untrusted.URL, consoleOperatorToken, "cancel", "--case", "1", "--platform", "taobao", "--no-wait", "--id", "cmd-unsent-5")
	if r.code() != 1 || strings.Contains(r.line(), "may have been stored") || !strings.Contains(r.line(), "certificate") || reached.Load() {
		t.Errorf("console's TLS handshake failed: exit %d (%s), reached %v; want exit 1 naming the certificate, not called possibly stored",
			r.code(), r.line(), reached.Load())
	}
}

func TestConfigPrecedence(t *testing.T) {
	e := newEnv(t)
	// The environment's NATS_URL is used unless --nats-url is given.
	e.mustRun("cancel", "--platform", "taobao", "--case", "1", "--no-wait")
	e.wantErr(1, "connect to NATS at nats://127.0.0.1:1", "cancel", "--platform", "taobao", "--case", "1", "--no-wait", "--nats-url", "nats://127.0.0.1:1")
	// Operator: REFUNDCTL_OPERATOR, else USER, else --operator wins over both.
	var res commandResult
	decodeJSON(t, e.mustRun("cancel", "--platform", "taobao", "--case", "1", "--no-wait", "--json").stdout, &res)
	if res.Command.Operator != "tester" {
		t.Errorf("operator = %q; want USER", res.Command.Operator)
	}
	e.vars["REFUNDCTL_OPERATOR"] = "ops-bob"
	decodeJSON(t, e.mustRun("cancel", "--platform", "taobao", "--case", "1", "--no-wait", "--json").stdout, &res)
	if res.Command.Operator != "ops-bob" {
		t.Errorf("operator = %q; want REFUNDCTL_OPERATOR", res.Command.Operator)
	}
	decodeJSON(t, e.mustRun("cancel", "--platform", "taobao", "--case", "1", "--no-wait", "--json", "--operator", "carol").stdout, &res)
	if res.Command.Operator != "carol" {
		t.Errorf("operator = %q; want --operator", res.Command.Operator)
	}
	e.wantErr(2, "--timeout 0s: must be positive", "cancel", "--platform", "taobao", "--case", "1", "--no-wait", "--timeout", "0s")
}

func TestHelpAndNoArgs(t *testing.T) {
	e := newEnv(t)
	r := e.mustRun()
	for _, want := range []string{"Usage:", "request", "replay", "trigger", "dead-letters", "NATS_URL", "DB_PATH", "RECEIVER_URL", "CALLBACK_TOKEN"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("help output lacks %q", want)
		}
	}
	// --help shows the documented defaults, never environment values.
	e.vars["NATS_URL"] = "nats://user:hunter2@10.0.0.1:4222"
	r = e.mustRun("list", "--help")
	if strings.Contains(r.stdout, "hunter2") || !strings.Contains(r.stdout, `(default "nats://127.0.0.1:4222")`) {
		t.Errorf("list --help shows the environment's NATS URL:\n%s", r.stdout)
	}
	r = e.mustRun("request", "--help")
	if !strings.Contains(r.stdout, "--goods-status") || !strings.Contains(r.stdout, "--voucher") {
		t.Errorf("request --help = %q", r.stdout)
	}
}

// TestRedactURLKeepsNoPartOfAPassword: a console or receiver URL is one
// URL; a comma in its password does not split it (the part before the
// comma, user and password start, was shown).
func TestRedactURLKeepsNoPartOfAPassword(t *testing.T) {
	for raw, want := range map[string]string{
		"https://ops:se,cret@console.example:8443": "https://console.example:8443",
		"https://ops:se,c/ret@console.example":     "https://…@console.example",
		"http://127.0.0.1:8080":                    "http://127.0.0.1:8080",
		"localhost:8080":                           "localhost:8080", // no user info: as typed
	} {
		if got := redactURL(raw); got != want {
			t.Errorf("redactURL(%q) = %q; want %q", raw, got, want)
		}
	}
}
