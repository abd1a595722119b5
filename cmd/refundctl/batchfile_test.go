package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// TestBatchColumnsAreFlags: a batch column is named after the request flag
// that sets the same field, so errors can name either.
func TestBatchColumnsAreFlags(t *testing.T) {
	a := &app{}
	flags := a.requestCommand().Flags()
	for _, col := range batchColumns {
		if flags.Lookup(col) == nil {
			t.Errorf("batch column %q: request has no --%s", col, col)
		}
	}
	flags.VisitAll(func(f *pflag.Flag) {
		if !slices.Contains(batchColumns, f.Name) && f.Name != "case" && f.Name != "wait" && f.Name != "no-wait" &&
			f.Name != "file" && !slices.Contains(batchOnlyFlags, f.Name) {
			t.Errorf("request --%s is neither a batch column nor a flag of the batch itself", f.Name)
		}
	})
}

func TestParseBatchCSV(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []batchRow
	}{{
		name: "BOM, CRLF, blank lines and rows of empty cells",
		in:   "\xef\xbb\xbfplatform,order,sub-order\r\n\r\ntaobao,1,2\r\n,,\r\n  , ,\r\n\r\ntaobao,1,3\r\n",
		want: []batchRow{
			{Line: 3, Values: map[string][]string{"platform": {"taobao"}, "order": {"1"}, "sub-order": {"2"}}},
			{Line: 7, Values: map[string][]string{"platform": {"taobao"}, "order": {"1"}, "sub-order": {"3"}}},
		},
	}, {
		name: "quoting: commas, doubled quotes, a line break in a cell; line numbers count the file's lines",
		in:   "platform,description,order\ntaobao,\"late, \"\"very\"\" late\",1\n1688,\"two\nlines\",2\ntaobao,plain,3\n",
		want: []batchRow{
			{Line: 2, Values: map[string][]string{"platform": {"taobao"}, "description": {`late, "very" late`}, "order": {"1"}}},
			{Line: 3, Values: map[string][]string{"platform": {"1688"}, "description": {"two\nlines"}, "order": {"2"}}},
			{Line: 5, Values: map[string][]string{"platform": {"taobao"}, "description": {"plain"}, "order": {"3"}}},
		},
	}, {
		name: "list columns split on ';', cells trimmed, empty cells absent, header case and spaces ignored",
		in:   " Platform ,VOUCHER,order-entry,reason\n taobao , a.jpg ; b.jpg;;,11;12,\n",
		want: []batchRow{{Line: 2, Values: map[string][]string{"platform": {"taobao"}, "voucher": {"a.jpg", "b.jpg"},
			"order-entry": {"11", "12"}, "reason": nil}}},
	}, {
		name: "an export's own columns are read past",
		in:   "platform,order,case-id,state,attention\n1688,9,12,waiting_seller,\n",
		want: []batchRow{{Line: 2, Values: map[string][]string{"platform": {"1688"}, "order": {"9"}}}},
	}, {
		name: "a row with too few or too many cells is that row's error",
		in:   "platform,order\ntaobao\ntaobao,1,2\ntaobao,1\n",
		want: []batchRow{
			{Line: 2, Values: map[string][]string{}, Err: "1 cells; the header names 2 columns"},
			{Line: 3, Values: map[string][]string{}, Err: "3 cells; the header names 2 columns"},
			{Line: 4, Values: map[string][]string{"platform": {"taobao"}, "order": {"1"}}},
		},
	}, {
		name: "an export's formula-like cells read without the apostrophe it added; typed by hand, as they are",
		in:   "platform,order,description,voucher\ntaobao,1,\"'=HYPERLINK(\"\"x\"\")\",'=a.jpg;@b.jpg\ntaobao,2,=1+1,'plain\n",
		want: []batchRow{
			{Line: 2, Values: map[string][]string{"platform": {"taobao"}, "order": {"1"}, "description": {`=HYPERLINK("x")`}, "voucher": {"=a.jpg", "@b.jpg"}}},
			{Line: 3, Values: map[string][]string{"platform": {"taobao"}, "order": {"2"}, "description": {"=1+1"}, "voucher": {"'plain"}}},
		},
	}, {
		name: "no final line break",
		in:   "platform,order\ntaobao,1",
		want: []batchRow{{Line: 2, Values: map[string][]string{"platform": {"taobao"}, "order": {"1"}}}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseBatch(strings.NewReader(tt.in), formatCSV)
			if err != nil {
				t.Fatalf("parseBatch(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseBatch(%q) =\n%+v\nwant\n%+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseBatchFileErrors(t *testing.T) {
	tests := []struct {
		format, in, want string
	}{
		{formatCSV, "", "empty: the first line names the columns"},
		{formatCSV, "platform,order,amonut\ntaobao,1,5\n", `header: unknown column "amonut" (the columns are platform, order, sub-order`},
		{formatCSV, "taobao,1,2\n", `header: unknown column "taobao"`},
		{formatCSV, "platform,order,Order\n", `header: column "order" twice`},
		{formatCSV, "platform,,order\n", "header: column 2 has no name"},
		{formatCSV, "order,sub-order\n1,2\n", "header: no platform column"},
		{formatCSV, "platform,description\ntaobao,\"unterminated\n", "not CSV"},
		{formatCSV, "platform,description\ntaobao,a \"bare\" quote\n", "not CSV"},
		{formatCSV, "platform\n" + strings.Repeat("taobao\n", maxBatchRows+1), "at most 10000 in one file"},
	}
	for _, tt := range tests {
		_, err := parseBatch(strings.NewReader(tt.in), tt.format)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseBatch(%.60q, %s) error = %v; want it to contain %q", tt.in, tt.format, err, tt.want)
		}
	}
}

func TestParseBatchJSONL(t *testing.T) {
	in := "\xef\xbb\xbf{\"platform\":\"taobao\",\"order\":1001,\"sub-order\":\"1002\",\"reason-id\":1004,\"amount\":\"max\"}\r\n" +
		"\r\n" +
		"   \n" +
		`{"platform":"1688","order":"2001","voucher":["a.jpg"," b.jpg ",""],"order-entry":[11,"12"],"description":null,"state":"x"}` + "\n" +
		`{"platform":"1688","voucher":"one.jpg"}` + "\n" +
		`{"platform":"taobao","amonut":5}` + "\n" +
		`["platform"]` + "\n" +
		`{"platform":true}` + "\n" +
		`{"platform":"taobao","order":{"id":1}}` + "\n" +
		`{"platform":"taobao","Order":"1","order":"2"}` + "\n" +
		`{"platform":"taobao","order":"1"` // no final line break, and not JSON
	got, err := parseBatch(strings.NewReader(in), formatJSONL)
	if err != nil {
		t.Fatalf("parseBatch: %v", err)
	}
	want := []batchRow{
		{Line: 1, Values: map[string][]string{"platform": {"taobao"}, "order": {"1001"}, "sub-order": {"1002"}, "reason-id": {"1004"}, "amount": {"max"}}},
		{Line: 4, Values: map[string][]string{"platform": {"1688"}, "order": {"2001"}, "voucher": {"a.jpg", "b.jpg"}, "order-entry": {"11", "12"}, "description": nil}},
		{Line: 5, Values: map[string][]string{"platform": {"1688"}, "voucher": {"one.jpg"}}},
		{Line: 6, Err: `unknown column "amonut" (the columns are platform, order, sub-order, type, goods-status, reason-id, reason, amount, carriage, description, voucher, order-entry, id)`},
		{Line: 7, Err: "not a JSON object with the columns as keys"},
		{Line: 8, Err: "platform: want a string, a number or an array of them"},
		{Line: 9, Err: "order: want a string, a number or an array of them"},
		{Line: 10, Err: `column "order" twice`},
		{Line: 11, Err: "not a JSON object with the columns as keys"},
	}
	if len(got) != len(want) {
		t.Fatalf("parseBatch: %d rows %+v; want %d", len(got), got, len(want))
	}
	for i := range want {
		g := got[i]
		if want[i].Err != "" {
			g.Values = nil // what was read before the error does not matter
		}
		if !reflect.DeepEqual(g, want[i]) {
			t.Errorf("row %d = %+v; want %+v", i, g, want[i])
		}
	}
}

func TestBatchFormat(t *testing.T) {
	tests := []struct {
		flag, name, data, want string
	}{
		{"", "refunds.csv", "{", formatCSV},
		{"", "refunds.CSV", "", formatCSV},
		{"", "refunds.jsonl", "platform", formatJSONL},
		{"", "refunds.ndjson", "", formatJSONL},
		{"", "-", "\xef\xbb\xbf  {\"platform\":\"taobao\"}", formatJSONL},
		{"", "-", "platform,order", formatCSV},
		{"jsonl", "refunds.csv", "", formatJSONL},
		{"CSV", "refunds.jsonl", "", formatCSV},
	}
	for _, tt := range tests {
		if got, err := batchFormat(tt.flag, tt.name, []byte(tt.data)); err != nil || got != tt.want {
			t.Errorf("batchFormat(%q, %q, %q) = %q, %v; want %q", tt.flag, tt.name, tt.data, got, err, tt.want)
		}
	}
	if _, err := batchFormat("xlsx", "a.xlsx", nil); err == nil || !strings.Contains(err.Error(), `--format "xlsx": want csv or jsonl`) {
		t.Errorf("batchFormat(xlsx) error = %v; want it to name --format", err)
	}
}

// testApp is an app for the pure parts of a batch (no stack).
func testApp() *app {
	return &app{cfg: config{Operator: "tester"}, now: func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }}
}

func TestPlanBatch(t *testing.T) {
	const header = "platform,order,sub-order,type,goods-status,reason-id,reason,amount,description,voucher,order-entry,id\n"
	in := header +
		"taobao,1001,1002,refund,1,1004,,max,late,,,\n" + // 2 valid
		"taobao,1001,1002,refund,1,1004,,max,late,,,\n" + // 3 the same row as 2
		"taobao,1001,1002,return,3,1004,,max,late,,,\n" + // 4 the same case as 2, another request
		"taobao,1001,1003,refund,1,1004,,0,late,,,\n" + // 5 valid: 0 is max
		"1688,2001,,return,aftersaleBuyerReceived,,七天无理由退货,9500,no longer needed,a.jpg;b.jpg,11;12,\n" + // 6 valid
		"taobao,1001,1004,refund,1,1004,,max,late,,,my-own-id-1\n" + // 7 valid, own id
		"taobao,1001,1005,refund,1,1004,,max,late,,,my-own-id-1\n" + // 8 the same id as 7
		"taobao,1001,,refund,1,1004,,max,late,,,\n" + // 9 no sub-order
		"taobao,1001,1006,refund,9,,,max,late,,,\n" + // 10 bad goods status and no reason
		",1001,1007,refund,1,1004,,max,late,,,\n" + // 11 no platform
		"1688,2002,,refund,refundWaitSellerSend,1,,max,ok,,x,\n" + // 12 max on 1688, bad order entry
		"taobao,1001,1008,refund,1,1004,,max,late,,,bad id!\n" + // 13 bad id
		"1688,2003,77,refund,refundWaitSellerSend,1,,100,ok,,,\n" // 14 a sub-order on 1688
	rows, err := parseBatch(strings.NewReader(in), formatCSV)
	if err != nil {
		t.Fatal(err)
	}
	got := testApp().planBatch(rows)
	want := []struct {
		line   int
		status string
		err    string
	}{
		{2, rowValid, ""},
		{3, rowInvalid, "the same row as line 2"},
		{4, rowInvalid, "taobao sub-order 1002 is on line 2 too: one row per case"},
		{5, rowValid, ""},
		{6, rowValid, ""},
		{7, rowValid, ""},
		{8, rowInvalid, "id my-own-id-1 is on line 7 too"},
		{9, rowInvalid, "sub-order: required for Taobao, digits only"},
		{10, rowInvalid, `goods-status "9": want 1, 2 or 3; reason-id or reason: give one`},
		{11, rowInvalid, "platform: required (taobao or 1688)"},
		{12, rowInvalid, `order-entry "x": want a whole number`},
		{13, rowInvalid, "id"},
		{14, rowInvalid, "sub-order: 1688 cases are one per order; leave it out (order-entry names the sub-orders a request concerns)"},
	}
	if len(got) != len(want) {
		t.Fatalf("planBatch: %d results; want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Line != w.line || g.Status != w.status || !strings.Contains(g.Error, w.err) || (w.err == "" && g.Error != "") {
			t.Errorf("row %d: line %d %s %q; want line %d %s containing %q", i, g.Line, g.Status, g.Error, w.line, w.status, w.err)
		}
		if strings.Contains(g.Error, "--") {
			t.Errorf("line %d: error %q names a flag; want the column", g.Line, g.Error)
		}
	}
	// The 1688 row carries its lists as the flags would give them.
	if r := got[4].command.Request; r == nil || !slices.Equal(r.Vouchers, []string{"a.jpg", "b.jpg"}) ||
		!slices.Equal(r.OrderEntryIDs, []int64{11, 12}) || !r.ReturnGoods || r.Amount != 9500 {
		t.Errorf("line 6's request = %+v; want return, 9500, vouchers a.jpg b.jpg, order entries 11 12", r)
	}
	if got[5].ID != "my-own-id-1" {
		t.Errorf("line 7's id = %q; want the row's own", got[5].ID)
	}
	for _, i := range []int{0, 3, 4} {
		id := got[i].ID
		if !strings.HasPrefix(id, "batch-") || got[i].command.Validate() != nil {
			t.Errorf("line %d: id %q; want a valid batch- id", got[i].Line, id)
		}
	}
	if got[0].ID == got[3].ID {
		t.Errorf("lines 2 and 5 (different sub-orders) share id %s", got[0].ID)
	}
}

// TestBatchCommandID: the id depends on what the row asks, never on when
// or by whom it is run, and is within the command id limits.
func TestBatchCommandID(t *testing.T) {
	row := "platform,order,sub-order,goods-status,reason-id,amount\ntaobao,1001,1002,1,1004,max\n"
	plan := func(a *app, in string) batchRowJSON {
		t.Helper()
		rows, err := parseBatch(strings.NewReader(in), formatCSV)
		if err != nil {
			t.Fatal(err)
		}
		return a.planBatch(rows)[0]
	}
	first := plan(testApp(), row)
	later := testApp()
	later.cfg.Operator, later.now = "someone-else", time.Now
	if again := plan(later, row); again.ID != first.ID {
		t.Errorf("the same row run later by another operator: id %s; want %s", again.ID, first.ID)
	}
	jsonl, err := parseBatch(strings.NewReader(`{"platform":"taobao","order":1001,"sub-order":"1002","goods-status":1,"reason-id":"1004","amount":0}`), formatJSONL)
	if err != nil {
		t.Fatal(err)
	}
	if got := testApp().planBatch(jsonl)[0]; got.ID != first.ID {
		t.Errorf("the same request in JSON Lines (amount 0 for max): id %s; want %s", got.ID, first.ID)
	}
	if other := plan(testApp(), strings.Replace(row, "1004", "1005", 1)); other.ID == first.ID {
		t.Errorf("another reason: id %s, the same as the first row's", other.ID)
	}
	if n := len(first.ID); n < 8 || n > 64 {
		t.Errorf("id %q: %d characters; want 8 to 64", first.ID, n)
	}
}

// TestExportRoundTrip: list --export's columns read back as a batch give
// the same commands.
func TestExportRoundTrip(t *testing.T) {
	const in = "platform,order,sub-order,type,goods-status,reason-id,reason,amount,carriage,description,voucher,order-entry\n" +
		"taobao,1001,1002,refund,1,1004,,max,,\"late, very\",http://img/1.jpg;http://img/2.jpg,\n" +
		"1688,2001,,return,aftersaleBuyerReceived,,七天无理由退货,9500,800,no longer needed,a.jpg,11;12\n"
	rows, err := parseBatch(strings.NewReader(in), formatCSV)
	if err != nil {
		t.Fatal(err)
	}
	planned := testApp().planBatch(rows)
	var cases []casestore.Case
	for i, p := range planned {
		if p.Status != rowValid {
			t.Fatalf("line %d: %s %s", p.Line, p.Status, p.Error)
		}
		cases = append(cases, caseOf(t, int64(i+1), p.command))
	}
	var buf bytes.Buffer
	if err := writeCasesCSV(&buf, cases); err != nil {
		t.Fatal(err)
	}
	header, _, _ := strings.Cut(buf.String(), "\n")
	if want := strings.Join(append(slices.Clone(batchColumns), exportColumns...), ","); header != want {
		t.Errorf("export header %q; want %q", header, want)
	}
	back, err := parseBatch(&buf, formatCSV)
	if err != nil {
		t.Fatalf("parseBatch(export): %v\n%s", err, buf.String())
	}
	again := testApp().planBatch(back)
	for i := range planned {
		if again[i].Status != rowValid || again[i].ID != planned[i].ID ||
			!reflect.DeepEqual(again[i].command.Request, planned[i].command.Request) {
			t.Errorf("exported row %d read back: %+v (%+v); want id %s and request %+v", i, again[i], again[i].command.Request,
				planned[i].ID, planned[i].command.Request)
		}
	}
}

// FuzzParseBatch: any file either fails whole or gives rows whose line
// numbers rise, whose values are batch columns, and which plan without
// panicking; a CSV's valid rows written back as CSV read the same.
func FuzzParseBatch(f *testing.F) {
	f.Add([]byte("platform,order,sub-order,goods-status,reason-id,amount\ntaobao,1,2,1,1004,max\n"), false)
	f.Add([]byte("\xef\xbb\xbfplatform,voucher\r\n1688,\"a;b\"\r\n\r\n"), false)
	f.Add([]byte(`{"platform":"1688","order":2001,"voucher":["a.jpg"]}`+"\n\n{}\n"), true)
	f.Fuzz(func(t *testing.T, data []byte, jsonl bool) {
		format := formatCSV
		if jsonl {
			format = formatJSONL
		}
		rows, err := parseBatch(bytes.NewReader(data), format)
		if err != nil {
			return
		}
		last := 0
		for _, r := range rows {
			if r.Line <= last {
				t.Fatalf("row at line %d after line %d", r.Line, last)
			}
			last = r.Line
			for col := range r.Values {
				if !slices.Contains(batchColumns, col) {
					t.Fatalf("line %d: value for %q, not a batch column", r.Line, col)
				}
			}
		}
		planned := testApp().planBatch(rows)
		if len(planned) != len(rows) {
			t.Fatalf("planBatch: %d results for %d rows", len(planned), len(rows))
		}
		if jsonl {
			return
		}
		var buf bytes.Buffer
		w := csv.NewWriter(&buf)
		_ = w.Write(batchColumns)
		var kept []batchRow
		for _, r := range rows {
			if r.Err != "" || blankRow(r) {
				continue
			}
			rec := make([]string, len(batchColumns))
			for i, col := range batchColumns {
				rec[i] = strings.Join(r.Values[col], ";")
			}
			_ = w.Write(rec)
			kept = append(kept, r)
		}
		w.Flush()
		back, err := parseBatch(&buf, formatCSV)
		if err != nil {
			t.Fatalf("rows written back do not parse: %v\n%q", err, buf.String())
		}
		if len(back) != len(kept) {
			t.Fatalf("rows written back: %d; want %d\n%q", len(back), len(kept), buf.String())
		}
		for i := range kept {
			for _, col := range batchColumns {
				if !slices.Equal(back[i].Values[col], kept[i].Values[col]) {
					t.Fatalf("row %d column %s written back: %q; want %q", i, col, back[i].Values[col], kept[i].Values[col])
				}
			}
		}
	})
}

func blankRow(r batchRow) bool {
	for v := range maps.Values(r.Values) {
		if len(v) > 0 {
			return false
		}
	}
	return true
}

// caseOf is the case c opens, as the store holds it.
func caseOf(t *testing.T, id int64, c refundflow.Command) casestore.Case {
	t.Helper()
	req, err := json.Marshal(c.Request)
	if err != nil {
		t.Fatal(err)
	}
	return casestore.Case{ID: id, Platform: c.Platform, OrderID: c.OrderID, SubOrderID: c.SubOrderID,
		State: string(refundflow.StateWaitingSeller), Request: req, OpenedBy: c.ID}
}
