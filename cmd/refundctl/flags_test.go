package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// TestFieldFlagsAreFlags: every flag validation errors are translated to is
// a flag of one of the command verbs.
func TestFieldFlagsAreFlags(t *testing.T) {
	a := &app{}
	cmds := map[string]bool{"request": true, "ship": true, "cancel": true, "message": true}
	defined := map[string]bool{}
	for _, c := range a.rootCommand().Commands() {
		if cmds[c.Name()] {
			for _, name := range []string{"platform", "order", "sub-order", "case", "id", "type", "goods-status", "reason-id", "reason",
				"amount", "carriage", "description", "voucher", "order-entry", "company", "waybill", "phone", "text"} {
				if c.Flags().Lookup(name) != nil {
					defined["--"+name] = true
				}
			}
		}
	}
	defined["--operator"] = true // global
	for field, flag := range fieldFlags {
		if name, _, _ := strings.Cut(flag, " "); !defined[name] {
			t.Errorf("fieldFlags[%q] = %q: no command verb defines %s", field, flag, name)
		}
	}
}

// jsonFieldName matches the JSON field names of a command in a message.
var jsonFieldName = regexp.MustCompile(`\b(subOrderId|orderId|caseId|goodsStatus|reasonId|orderEntryIds|returnGoods)\b|(^|; )(id|platform|amount|carriage|description|vouchers|company|waybill|phone|message|reason):`)

// TestValidationErrorsNameFlags: bad values are reported with the flag the
// operator typed, never the JSON field name, in one line with exit 2, and
// nothing is published.
func TestValidationErrorsNameFlags(t *testing.T) {
	e := newEnv(t)
	tb := []string{"--platform", "taobao", "--order", "1", "--sub-order", "2"}
	ab := []string{"--platform", "1688", "--order", "1"}
	tests := []struct {
		name, want string
		args       []string
	}{
		{"taobao ship without sub-order", "--sub-order: required for Taobao", []string{"ship", "--platform", "taobao", "--order", "1", "--company", "SF", "--waybill", "1"}},
		{"1688 without order", "--order: required for 1688", []string{"cancel", "--platform", "1688"}},
		{"sub-order not digits", "--sub-order: digits only", []string{"cancel", "--platform", "taobao", "--sub-order", "x1"}},
		{"bad id", "--id: 8 to 64 characters of A-Z a-z 0-9 _ . : -", []string{"cancel", "--platform", "taobao", "--sub-order", "1", "--id", "short"}},
		{"long operator", "--operator: at most 64", []string{"cancel", "--platform", "taobao", "--sub-order", "1", "--operator", strings.Repeat("o", 65)}},
		{"negative reason id", "--reason-id: must not be negative", append([]string{"request", "--goods-status", "1", "--reason-id", "-1"}, tb...)},
		{"carriage on taobao", "--carriage: only for 1688", append([]string{"request", "--goods-status", "1", "--reason-id", "1", "--carriage", "5"}, tb...)},
		{"order entry on taobao", "--order-entry: only for 1688", append([]string{"request", "--goods-status", "1", "--reason-id", "1", "--order-entry", "5"}, tb...)},
		{"1688 goods status", `--goods-status "1": want one of refundWaitSellerSend`, append([]string{"request", "--goods-status", "1", "--reason-id", "1", "--amount", "1", "--description", "ok"}, ab...)},
		{"1688 long description", "--description: 2 to 150 characters on 1688", append([]string{"request", "--goods-status", "refundWaitSellerSend", "--reason-id", "1", "--amount", "1", "--description", strings.Repeat("长", 151)}, ab...)},
		{"1688 negative order entry", "--order-entry: must be positive", append([]string{"request", "--goods-status", "refundWaitSellerSend", "--reason-id", "1", "--amount", "1", "--description", "ok", "--order-entry", "-1"}, ab...)},
		{"blank waybill", "--waybill: 1 to 64 printable characters", []string{"ship", "--platform", "taobao", "--sub-order", "1", "--company", "SF", "--waybill", " "}},
		{"long phone", "--phone: at most 32", []string{"ship", "--platform", "taobao", "--sub-order", "1", "--company", "SF", "--waybill", "1", "--phone", strings.Repeat("1", 33)}},
		{"long message", "--text: 1 to 500 characters", []string{"message", "--platform", "taobao", "--sub-order", "1", "--text", strings.Repeat("m", 501)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.wantErr(2, tt.want, tt.args...)
			if m := jsonFieldName.FindString(r.line()); m != "" {
				t.Errorf("refundctl %s: error %q names the JSON field %q; want flags only", strings.Join(tt.args, " "), r.line(), m)
			}
		})
	}
	if n := e.streamCount(events.DefaultCommandStreamName); n != 0 {
		t.Errorf("COMMANDS holds %d messages after bad input; want 0", n)
	}
}

// TestHelpStatesRules: the constraints on values are in --help, worded as
// refundflow's validation words them.
func TestHelpStatesRules(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct {
		cmd  string
		want []string
	}{
		{"request", []string{"8 to 64 characters of A-Z a-z 0-9 _ . : -", "1688: 2 to 150 characters", "Taobao (one case per sub-order): required, digits only",
			"Taobao: max (or 0, as before) = the most the rendered form allows", "refundctl reasons", "aftersaleBuyerReceived"}},
		{"ship", []string{"Taobao --sub-order", "Taobao (one case per sub-order): required", "--waybill string", "1 to 64 printable characters"}},
		{"message", []string{"1 to 500 characters of UTF-8"}},
	} {
		out := e.mustRun(tt.cmd, "--help").stdout
		for _, w := range tt.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s --help lacks %q:\n%s", tt.cmd, w, out)
			}
		}
	}
	r := validationRules()
	for name, v := range map[string]string{"id": r.id, "taobaoSubOrder": r.taobaoSubOrder, "alibabaOrder": r.alibabaOrder,
		"alibabaGoods": r.alibabaGoods, "alibabaAmount": r.alibabaAmount, "taobaoDescription": r.taobaoDescription,
		"alibabaDescription": r.alibabaDescription, "shipDescription": r.shipDescription, "message": r.message,
		"company": r.company, "waybill": r.waybill, "phone": r.phone} {
		if v == "" {
			t.Errorf("validationRules().%s is empty: refundflow's message for it changed; fix the probe", name)
		}
	}
}

// TestCaseImpliesTarget: --case alone takes the platform and the order from
// the case store; a flag contradicting the case is a usage error naming it;
// --amount max is Taobao's 0.
func TestCaseImpliesTarget(t *testing.T) {
	e := newEnv(t)
	seedCases(t, e.openStore()) // case 1: taobao 100/101; case 2: 1688 200
	publish := func(args ...string) commandResult {
		t.Helper()
		var res commandResult
		decodeJSON(t, e.mustRun(append(args, "--no-wait", "--json")...).stdout, &res)
		return res
	}
	res := publish("cancel", "--case", "1")
	if c := res.Command; c.Platform != refundflow.PlatformTaobao || c.OrderID != "100" || c.SubOrderID != "101" || c.CaseID != 1 ||
		res.Subject != "commands.taobao.cancel.case_1" {
		t.Errorf("cancel --case 1: published %+v on %s; want taobao 100/101 case 1 on commands.taobao.cancel.case_1", c, res.Subject)
	}
	res = publish("ship", "--case", "2", "--company", "SF", "--waybill", "SF1")
	if c := res.Command; c.Platform != refundflow.Platform1688 || c.OrderID != "200" || c.SubOrderID != "" || res.Subject != "commands.1688.report_shipment.case_2" {
		t.Errorf("ship --case 2: published %+v on %s; want 1688 order 200", c, res.Subject)
	}
	// Agreeing flags are fine; waiting for the verdict, the case is read
	// even with --platform given (no worker here: pending, exit 5).
	r := e.run("cancel", "--case", "1", "--platform", "taobao", "--sub-order", "101", "--wait", "200ms", "--json")
	res = commandResult{}
	decodeJSON(t, r.stdout, &res)
	if r.code() != exitPending || res.Command.OrderID != "100" {
		t.Errorf("cancel --case 1 with agreeing flags: exit %d, order %q; want exit 5 (pending), order 100", r.code(), res.Command.OrderID)
	}
	before := e.streamCount(events.DefaultCommandStreamName)
	e.wantErr(2, "--platform 1688: case 1 is for platform taobao; leave --platform out or fix --case", "cancel", "--case", "1", "--platform", "1688")
	e.wantErr(2, "--sub-order 999: case 1 is for sub-order 101", "cancel", "--case", "1", "--sub-order", "999", "--wait", "1s")
	e.wantErr(2, "--order 7: case 2 is for order 200", "message", "--case", "2", "--order", "7", "--text", "hi")
	e.wantErr(2, "--sub-order 5: case 2 is for sub-order none", "cancel", "--case", "2", "--sub-order", "5")
	e.wantErr(1, "--case 99: no such case in", "cancel", "--case", "99")
	e.wantErr(2, "invalid report_shipment command for case 1: --waybill: 1 to 64 printable characters", "ship", "--case", "1", "--company", "SF", "--waybill", " ")
	if n := e.streamCount(events.DefaultCommandStreamName); n != before {
		t.Errorf("COMMANDS went from %d to %d messages on bad input; want no change", before, n)
	}

	// The case as an argument, as modify, resolve, show and wait take it.
	res = publish("cancel", "1")
	if c := res.Command; c.CaseID != 1 || c.SubOrderID != "101" || res.Subject != "commands.taobao.cancel.case_1" {
		t.Errorf("cancel 1: published %+v on %s; want what cancel --case 1 publishes", c, res.Subject)
	}
	res = publish("ship", "2", "--company", "SF", "--waybill", "SF1")
	if c := res.Command; c.CaseID != 2 || c.OrderID != "200" || c.Kind != refundflow.InputReportShipment {
		t.Errorf("ship 2: published %+v; want a report_shipment for case 2, order 200", c)
	}
	res = publish("message", "1", "--case", "1", "--text", "hi")
	if c := res.Command; c.CaseID != 1 || c.Message != "hi" {
		t.Errorf("message 1 --case 1: published %+v; want a message for case 1", c)
	}
	before = e.streamCount(events.DefaultCommandStreamName)
	e.wantErr(2, `CASE "x": want a case id`, "cancel", "x")
	e.wantErr(2, `CASE "0": want a case id`, "ship", "0", "--company", "SF", "--waybill", "SF1")
	e.wantErr(2, "CASE 1 and --case 2 name different cases", "message", "1", "--case", "2", "--text", "hi")
	e.wantErr(2, "accepts at most 1 arg(s), received 2", "cancel", "1", "2")
	e.wantErr(1, "CASE 99: no such case in", "cancel", "99")
	e.wantErr(2, "--order 7: case 2 is for order 200; leave --order out or fix CASE", "message", "2", "--order", "7", "--text", "hi")
	if n := e.streamCount(events.DefaultCommandStreamName); n != before {
		t.Errorf("COMMANDS went from %d to %d messages on bad input; want no change", before, n)
	}

	res = publish("request", "--platform", "taobao", "--order", "5", "--sub-order", "6", "--goods-status", "1", "--reason-id", "1004", "--amount", "max")
	if res.Command.Request == nil || res.Command.Request.Amount != 0 {
		t.Errorf("--amount max: request %+v; want amount 0 (the most the form allows)", res.Command.Request)
	}
	res = publish("request", "--platform", "1688", "--order", "5", "--goods-status", "refundWaitSellerSend", "--reason-id", "1",
		"--amount", "9500", "--description", "ok")
	if res.Command.Request == nil || res.Command.Request.Amount != 9500 {
		t.Errorf("--amount 9500: request %+v; want amount 9500", res.Command.Request)
	}
}
