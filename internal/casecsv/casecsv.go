// Package casecsv writes cases as CSV. It is the one owner of the export's
// columns and of how each value is written, for `refundctl list --export
// csv` and the console's export (/cases.csv, /api/v1/cases.csv).
//
// The first columns are a batch file's (RequestColumns, which `refundctl
// request --file` reads), so that an export edited in a spreadsheet files
// requests again; the case's own columns (CaseColumns) follow, and a batch
// reads past them. The id column is the command that opened the case: run
// unchanged, the file files nothing new; an edited row needs its id
// cleared to be filed as a new request.
//
// A cell a spreadsheet would run as a formula is written as text (Cell),
// and read back as it was (Value).
package casecsv

import (
	"encoding/csv"
	"encoding/json"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/refundflow"
)

var requestColumns = []string{
	"platform", "order", "sub-order", "type", "goods-status", "reason-id", "reason",
	"amount", "carriage", "description", "voucher", "order-entry", "id",
}

var caseColumns = []string{"case-id", "state", "attention", "created", "updated"}

// RequestColumns are a batch file's columns, in the order an export
// writes them.
func RequestColumns() []string { return slices.Clone(requestColumns) }

// CaseColumns are the columns an export writes after RequestColumns: the
// case's id, state, attention code, and creation and last update times
// (RFC 3339, UTC, milliseconds). A batch reads past them.
func CaseColumns() []string { return slices.Clone(caseColumns) }

// Header is an export's header row.
func Header() []string { return append(RequestColumns(), caseColumns...) }

// ListSeparator joins the values of a column that holds several
// (voucher, order-entry) in one cell.
const ListSeparator = ";"

// Writer writes cases as CSV rows, the header first (encoding/csv quotes
// commas, quotes and line breaks).
type Writer struct {
	cw     *csv.Writer
	header bool
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer { return &Writer{cw: csv.NewWriter(w)} }

// Write writes c's row, after the header if none was written yet.
func (w *Writer) Write(c casestore.Case) error {
	if err := w.writeHeader(); err != nil {
		return err
	}
	return w.cw.Write(Row(c))
}

func (w *Writer) writeHeader() error {
	if w.header {
		return nil
	}
	w.header = true
	return w.cw.Write(Header())
}

// Flush writes what is buffered (the header too, for an empty export) and
// reports the first error of any write.
func (w *Writer) Flush() error {
	if err := w.writeHeader(); err != nil {
		return err
	}
	w.cw.Flush()
	return w.cw.Error()
}

// Row is c as an export row, in Header's columns, each cell through Cell.
func Row(c casestore.Case) []string {
	req := requestRow(c)
	rec := make([]string, 0, len(requestColumns)+len(caseColumns))
	for _, col := range requestColumns {
		rec = append(rec, req[col])
	}
	rec = append(rec, strconv.FormatInt(c.ID, 10), c.State, c.AttentionCode, csvTime(c.CreatedAt), csvTime(c.UpdatedAt))
	for i, v := range rec {
		rec[i] = Cell(v)
	}
	return rec
}

// Cell is value as an export writes it: each part of it (the whole value,
// or each piece between semicolons) that a spreadsheet would take for a
// formula gets a leading apostrophe, which the spreadsheet shows as text.
// A part is formula-like when it begins, after any spaces and double
// quotes, with =, +, -, @, a tab or a carriage return. Descriptions,
// reasons, voucher names and order ids come from operators and the
// platform: opened in a spreadsheet, an export must not run what they
// hold (CSV injection). The semicolon counts because it is the list
// separator of many locales: a spreadsheet splitting on it starts a cell
// at every one, wherever it stands in a field. A part that begins with an
// apostrophe before such a character gets one more, so that Value can
// tell the two apart and every value comes back as it was.
func Cell(value string) string { return eachPart(value, cellPart) }

// Value is the value of a cell Cell wrote: without the apostrophes Cell
// added. A cell Cell did not write (a batch file typed by hand) is its own
// value, unless a part of it begins with an apostrophe before what a
// spreadsheet would run, which a spreadsheet shows without the apostrophe
// too.
func Value(cell string) string { return eachPart(cell, valuePart) }

// eachPart applies f to each semicolon-separated part of v.
func eachPart(v string, f func(string) string) string {
	if !strings.Contains(v, ";") {
		return f(v)
	}
	parts := strings.Split(v, ";")
	for i, p := range parts {
		parts[i] = f(p)
	}
	return strings.Join(parts, ";")
}

func cellPart(p string) string {
	if formulaLike(p) {
		return "'" + p
	}
	return p
}

func valuePart(p string) string {
	if rest, ok := strings.CutPrefix(p, "'"); ok && formulaLike(rest) {
		return rest
	}
	return p
}

// formulaLike reports whether a spreadsheet could run v as a formula, or v
// is such a value behind apostrophes (Cell's escape, escaped again).
func formulaLike(v string) bool {
	v = strings.TrimLeft(v, ` "`)
	if v == "" {
		return false
	}
	switch v[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return true
	case '\'':
		return formulaLike(v[1:])
	}
	return false
}

func csvTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// requestRow is a case as a batch row: the request as the operator gave
// it (not the plan the worker made of it: `max` stays max).
func requestRow(c casestore.Case) map[string]string {
	row := map[string]string{"platform": string(c.Platform), "order": c.OrderID, "sub-order": c.SubOrderID, "id": c.OpenedBy}
	if c.Platform == casestore.Platform1688 {
		row["sub-order"] = "" // a case opened before one case per order may carry one: request refuses it
	}
	var r refundflow.Request
	if len(c.Request) == 0 || json.Unmarshal(c.Request, &r) != nil || r.GoodsStatus == "" {
		return row // no request recorded (a case opened by a callback): the case's own columns only
	}
	row["type"] = "refund"
	if r.ReturnGoods {
		row["type"] = "return"
	}
	row["goods-status"], row["reason"], row["description"] = r.GoodsStatus, r.Reason, r.Description
	if r.ReasonID != 0 {
		row["reason-id"] = strconv.FormatInt(r.ReasonID, 10)
	}
	row["amount"] = strconv.FormatInt(r.Amount, 10)
	if r.Amount == 0 && c.Platform == casestore.PlatformTaobao {
		row["amount"] = refundflow.AmountMax
	}
	if r.Carriage != 0 {
		row["carriage"] = strconv.FormatInt(r.Carriage, 10)
	}
	row["voucher"] = strings.Join(r.Vouchers, ListSeparator)
	entries := make([]string, len(r.OrderEntryIDs))
	for i, id := range r.OrderEntryIDs {
		entries[i] = strconv.FormatInt(id, 10)
	}
	row["order-entry"] = strings.Join(entries, ListSeparator)
	return row
}
