package main

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/refundhub/refundhub/internal/casecsv"
	"github.com/refundhub/refundhub/internal/excerpt"
)

// batchColumns are the columns of a `request --file` row, in the order
// `list --export csv` writes them (casecsv owns them). Each is named after
// the request flag that sets the same field (TestBatchColumnsAreFlags), so
// a row reads like a command line and its errors name the column as the
// flag's.
var batchColumns = casecsv.RequestColumns()

// listColumns hold several values: casecsv.ListSeparator-separated in a
// CSV cell, an array in JSON Lines (or one value).
var listColumns = []string{"voucher", "order-entry"}

// exportColumns are what `list --export csv` writes after the batch
// columns. A batch file may carry them (an export edited in a
// spreadsheet); they are read past, never sent.
var exportColumns = casecsv.CaseColumns()

// Batch formats for --format.
const (
	formatCSV   = "csv"
	formatJSONL = "jsonl"
)

// maxBatchRows bounds one batch file: the rows are all held, published and
// polled for verdicts together. Bigger files are split.
const maxBatchRows = 10000

var utf8BOM = []byte("\xef\xbb\xbf")

// batchRow is one row of a batch file as written: the values of each
// column present (trimmed; none for an empty cell), or why the row could
// not be read at all.
type batchRow struct {
	Line   int // 1-based line of the file where the row starts
	Values map[string][]string
	Err    string
}

// batchFormat picks the format of a batch file: --format if given, else
// the file's extension, else its first character ('{' is JSON Lines).
func batchFormat(flag, name string, data []byte) (string, error) {
	switch strings.ToLower(flag) {
	case formatCSV:
		return formatCSV, nil
	case formatJSONL, "ndjson":
		return formatJSONL, nil
	case "":
	default:
		return "", usagef("--format %q: want csv or jsonl", excerpt.Of(flag, 40))
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".csv":
		return formatCSV, nil
	case ".jsonl", ".ndjson":
		return formatJSONL, nil
	}
	if t := bytes.TrimSpace(bytes.TrimPrefix(data, utf8BOM)); len(t) > 0 && t[0] == '{' {
		return formatJSONL, nil
	}
	return formatCSV, nil
}

// parseBatch reads the rows of a batch file. An error is about the file
// as a whole (no header, an unknown column, broken CSV quoting, too many
// rows): nothing in it is sent. A row that is wrong on its own carries
// its Err and is reported with the others.
func parseBatch(r io.Reader, format string) ([]batchRow, error) {
	var rows []batchRow
	var err error
	if format == formatJSONL {
		rows, err = parseBatchJSONL(r)
	} else {
		rows, err = parseBatchCSV(r)
	}
	if err != nil {
		return nil, err
	}
	if len(rows) > maxBatchRows {
		return nil, fmt.Errorf("%d rows: at most %d in one file; split it", len(rows), maxBatchRows)
	}
	return rows, nil
}

// parseBatchCSV reads a header naming the columns, then one row per
// record (a leading UTF-8 BOM, CRLF line ends and blank lines tolerated,
// as spreadsheets write them; a row of empty cells is blank too).
func parseBatchCSV(r io.Reader) ([]batchRow, error) {
	br := bufio.NewReader(r)
	if b, _ := br.Peek(len(utf8BOM)); bytes.Equal(b, utf8BOM) {
		_, _ = br.Discard(len(utf8BOM))
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1 // a short or long row is that row's error, reported with the others
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("empty: the first line names the columns (" + strings.Join(batchColumns, ",") + ")")
	}
	if err != nil {
		return nil, fmt.Errorf("not CSV: %w", err)
	}
	cols, err := batchHeader(header)
	if err != nil {
		return nil, err
	}
	var rows []batchRow
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return nil, fmt.Errorf("not CSV: %w", err)
		}
		if blankRecord(rec) {
			continue
		}
		line, _ := cr.FieldPos(0)
		row := batchRow{Line: line, Values: map[string][]string{}}
		if len(rec) != len(cols) {
			row.Err = fmt.Sprintf("%d cells; the header names %d columns", len(rec), len(cols))
			rows = append(rows, row)
			continue
		}
		for i, col := range cols {
			if col == "" {
				continue // an export column
			}
			row.Values[col] = cellValues(col, casecsv.Value(rec[i])) // an export's formula-like cells carry an apostrophe
		}
		rows = append(rows, row)
	}
}

// batchHeader checks a CSV header: every name a batch or export column,
// none twice. It returns the batch column of each position, "" for an
// export column.
func batchHeader(header []string) ([]string, error) {
	cols := make([]string, len(header))
	seen := map[string]bool{}
	for i, h := range header {
		name := strings.ToLower(strings.TrimSpace(h))
		switch {
		case name == "":
			return nil, fmt.Errorf("header: column %d has no name", i+1)
		case seen[name]:
			return nil, fmt.Errorf("header: column %q twice", excerpt.Of(name, 40))
		case slices.Contains(exportColumns, name):
		case slices.Contains(batchColumns, name):
			cols[i] = name
		default:
			return nil, fmt.Errorf("header: unknown column %q (the columns are %s)", excerpt.Of(name, 40), strings.Join(batchColumns, ", "))
		}
		seen[name] = true
	}
	if !slices.Contains(cols, "platform") {
		return nil, errors.New("header: no platform column (the first line names the columns: " + strings.Join(batchColumns, ",") + ")")
	}
	return cols, nil
}

func blankRecord(rec []string) bool {
	for _, c := range rec {
		if strings.TrimSpace(c) != "" {
			return false
		}
	}
	return true
}

// cellValues splits a CSV cell: list columns on ';', every value trimmed,
// empty ones dropped.
func cellValues(col, cell string) []string {
	parts := []string{cell}
	if slices.Contains(listColumns, col) {
		parts = strings.Split(cell, casecsv.ListSeparator)
	}
	var out []string
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseBatchJSONL reads one JSON object per line, keyed by the column
// names (blank lines skipped, CRLF and a leading BOM tolerated). A line
// that is not such an object is that row's error.
func parseBatchJSONL(r io.Reader) ([]batchRow, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var rows []batchRow
	for n := 1; ; n++ {
		line, err := readLine(br, maxLineBytes)
		if errors.Is(err, errLineTooLong) {
			return nil, fmt.Errorf("line %d: longer than %d bytes", n, maxLineBytes)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if n == 1 {
			line = bytes.TrimPrefix(line, utf8BOM)
		}
		if t := bytes.TrimSpace(line); len(t) > 0 {
			rows = append(rows, jsonlRow(n, t))
		}
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
	}
}

// jsonlRow reads one JSON Lines row: an object whose keys are columns and
// whose values are strings or numbers (arrays of them for the list
// columns).
func jsonlRow(line int, data []byte) batchRow {
	row := batchRow{Line: line, Values: map[string][]string{}}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil || obj == nil {
		row.Err = "not a JSON object with the columns as keys"
		return row
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys) // the first problem reported is the same every run
	for _, k := range keys {
		col := strings.ToLower(strings.TrimSpace(k))
		if slices.Contains(exportColumns, col) {
			continue
		}
		if !slices.Contains(batchColumns, col) {
			row.Err = fmt.Sprintf("unknown column %q (the columns are %s)", excerpt.Of(k, 40), strings.Join(batchColumns, ", "))
			return row
		}
		if _, dup := row.Values[col]; dup {
			row.Err = fmt.Sprintf("column %q twice", col)
			return row
		}
		vals, err := jsonValues(obj[k])
		if err != nil {
			row.Err = fmt.Sprintf("%s: %v", col, err)
			return row
		}
		row.Values[col] = vals
	}
	return row
}

// jsonValues reads a JSON Lines value: a string or number, an array of
// them, or null (none).
func jsonValues(raw json.RawMessage) ([]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '[' {
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, errors.New("want a string, a number or an array of them")
		}
		var out []string
		for _, it := range items {
			v, ok := jsonScalar(it)
			if !ok {
				return nil, errors.New("want an array of strings or numbers")
			}
			if v != "" {
				out = append(out, v)
			}
		}
		return out, nil
	}
	v, ok := jsonScalar(raw)
	if !ok {
		return nil, errors.New("want a string, a number or an array of them")
	}
	if v == "" {
		return nil, nil
	}
	return []string{v}, nil
}

// jsonScalar is a JSON string's text (trimmed) or a number as written;
// null is "".
func jsonScalar(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	switch {
	case string(raw) == "null":
		return "", true
	case len(raw) > 0 && raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", false
		}
		return strings.TrimSpace(s), true
	case len(raw) > 0 && (raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9'):
		var n json.Number
		if err := json.Unmarshal(raw, &n); err != nil {
			return "", false
		}
		return n.String(), true
	}
	return "", false
}

// rowInput reads a row into a request as the flags would give it. The
// errors name the column.
func rowInput(row batchRow) (requestInput, error) {
	if row.Err != "" {
		return requestInput{}, errors.New(row.Err)
	}
	var errs []error
	one := func(col string) string {
		v := row.Values[col]
		if len(v) > 1 {
			errs = append(errs, fmt.Errorf("%s: one value, not %d", col, len(v)))
		}
		if len(v) == 0 {
			return ""
		}
		return v[0]
	}
	number := func(col, s string) int64 {
		if s == "" {
			return 0
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %q: want a whole number", col, excerpt.Of(s, 40)))
		}
		return n
	}
	in := requestInput{typ: one("type"), amount: one("amount")}
	in.platform, in.orderID, in.subOrderID, in.id = one("platform"), one("order"), one("sub-order"), one("id")
	r := &in.request
	r.GoodsStatus, r.Reason, r.Description = one("goods-status"), one("reason"), one("description")
	r.ReasonID = number("reason-id", one("reason-id"))
	r.Carriage = number("carriage", one("carriage"))
	r.Vouchers = row.Values["voucher"]
	for _, s := range row.Values["order-entry"] {
		r.OrderEntryIDs = append(r.OrderEntryIDs, number("order-entry", s))
	}
	if in.platform == "" {
		errs = append(errs, errors.New("platform: required (taobao or 1688)"))
	}
	if len(errs) > 0 {
		return requestInput{}, errors.Join(errs...)
	}
	return in, nil
}
