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
	"bufio"
	"encoding/json"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

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

// Writer writes cases as CSV rows, the header first. A field is quoted
// when it holds a comma, a double quote, a line break or a semicolon, or
// begins with a space: encoding/csv's rule, plus the semicolon. A
// spreadsheet set to split on semicolons (the list separator of many
// locales, and the voucher and order-entry columns' own) would otherwise
// split a field there and start a cell with what follows, where Cell,
// which sees only the start of the whole value, cannot stop a formula.
type Writer struct {
	w      *bufio.Writer
	header bool
	err    error // the first write's error
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: bufio.NewWriter(w)} }

// Write writes c's row, after the header if none was written yet.
func (w *Writer) Write(c casestore.Case) error {
	if err := w.writeHeader(); err != nil {
		return err
	}
	return w.writeRecord(Row(c))
}

func (w *Writer) writeHeader() error {
	if w.header {
		return w.err
	}
	w.header = true
	return w.writeRecord(Header())
}

// writeRecord writes one record, its fields separated by commas and
// quoted where quoteField says, ending in a line feed (as encoding/csv
// writes by default).
func (w *Writer) writeRecord(rec []string) error {
	if w.err != nil {
		return w.err
	}
	for i, f := range rec {
		if i > 0 {
			w.w.WriteByte(',')
		}
		if quoteField(f) {
			w.w.WriteByte('"')
			w.w.WriteString(strings.ReplaceAll(f, `"`, `""`))
			w.w.WriteByte('"')
		} else {
			w.w.WriteString(f)
		}
	}
	_, w.err = w.w.WriteString("\n") // a bufio.Writer keeps its first error
	return w.err
}

// quoteField reports whether f must be quoted (see Writer).
func quoteField(f string) bool {
	if f == "" {
		return false
	}
	if f == `\.` || strings.ContainsAny(f, ",\";\r\n") {
		return true
	}
	r, _ := utf8.DecodeRuneInString(f)
	return unicode.IsSpace(r)
}

// Flush writes what is buffered (the header too, for an empty export) and
// reports the first error of any write.
func (w *Writer) Flush() error {
	if err := w.writeHeader(); err != nil {
		return err
	}
	if err := w.w.Flush(); err != nil {
		w.err = err
	}
	return w.err
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

// Cell is value as an export writes it: with a leading apostrophe when a
// spreadsheet would take the cell for a formula (it begins, after any
// spaces, with =, +, -, @, a tab or a carriage return), which the
// spreadsheet then shows as text. Descriptions, reasons, voucher names and
// order ids come from operators and the platform: opened in a spreadsheet,
// an export must not run what they hold (CSV injection). A value that
// begins with an apostrophe before such a character gets one more, so that
// Value can tell the two apart and every value comes back as it was.
func Cell(value string) string {
	if formulaLike(value) {
		return "'" + value
	}
	return value
}

// Value is the value of a cell Cell wrote: without the apostrophe Cell
// added. A cell Cell did not write (a batch file typed by hand) is its own
// value, unless it begins with an apostrophe before what a spreadsheet
// would run, which a spreadsheet shows without the apostrophe too.
func Value(cell string) string {
	if rest, ok := strings.CutPrefix(cell, "'"); ok && formulaLike(rest) {
		return rest
	}
	return cell
}

// formulaLike reports whether a spreadsheet could run v as a formula, or v
// is such a value behind apostrophes (Cell's escape, escaped again).
func formulaLike(v string) bool {
	v = strings.TrimLeft(v, " ")
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
