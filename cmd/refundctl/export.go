package main

import (
	"encoding/csv"
	"encoding/json"
	"io"
	"strconv"
	"strings"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/excerpt"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// exportFormats are what list --export writes.
var exportFormats = []string{formatCSV}

// checkExport reads list's --export.
func checkExport(format string, jsonOut bool) error {
	switch {
	case format == "":
		return nil
	case format != formatCSV:
		return usagef("--export %q: want %s", excerpt.Of(format, 40), strings.Join(exportFormats, ", "))
	case jsonOut:
		return usagef("--export and --json: give one")
	}
	return nil
}

// writeCasesCSV writes cases in a batch file's columns (batchColumns), so
// that the file, edited in a spreadsheet, is a `request --file` again,
// then the export columns (case id, state, attention code), which a batch
// reads past. The id column is the command that opened the case: run
// unchanged, the file files nothing new; an edited row needs its id
// cleared to be filed as a new request.
func writeCasesCSV(w io.Writer, cases []casestore.Case) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(append(append([]string(nil), batchColumns...), exportColumns...)); err != nil {
		return err
	}
	for _, c := range cases {
		row := exportRow(c)
		rec := make([]string, 0, len(batchColumns)+len(exportColumns))
		for _, col := range batchColumns {
			rec = append(rec, row[col])
		}
		rec = append(rec, strconv.FormatInt(c.ID, 10), c.State, c.AttentionCode)
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// exportRow is a case as a batch row: the request as the operator gave it
// (not the plan the worker made of it: `max` stays max).
func exportRow(c casestore.Case) map[string]string {
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
		row["amount"] = amountMax
	}
	if r.Carriage != 0 {
		row["carriage"] = strconv.FormatInt(r.Carriage, 10)
	}
	row["voucher"] = strings.Join(r.Vouchers, ";")
	entries := make([]string, len(r.OrderEntryIDs))
	for i, id := range r.OrderEntryIDs {
		entries[i] = strconv.FormatInt(id, 10)
	}
	row["order-entry"] = strings.Join(entries, ";")
	return row
}
