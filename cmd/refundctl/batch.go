package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/refundhub/refundhub/internal/refundflow"
)

// batchOptions are request's flags for a batch file.
type batchOptions struct {
	file         string
	format       string
	dryRun       bool
	allOrNothing bool
}

func addBatchFlags(cmd *cobra.Command, o *batchOptions) {
	f := cmd.Flags()
	f.StringVar(&o.file, "file", "", "start one case per row of this CSV or JSON Lines file (- for stdin), columns named like the flags; see docs/refundctl.md")
	f.StringVar(&o.format, "format", "", "with --file: csv or jsonl (default: the file's extension .csv, .jsonl or .ndjson, else its first character)")
	f.BoolVar(&o.dryRun, "dry-run", false, "with --file: check every row, print the command ids, send nothing (exit 0 all valid, 2 otherwise)")
	f.BoolVar(&o.allOrNothing, "all-or-nothing", false, "with --file: send nothing when any row is invalid (exit 2)")
}

// batchOnlyFlags are the flags that mean nothing without --file.
var batchOnlyFlags = []string{"format", "dry-run", "all-or-nothing"}

// withoutFile refuses the batch flags on a single request.
func (o batchOptions) withoutFile(cmd *cobra.Command) error {
	for _, name := range batchOnlyFlags {
		if cmd.Flags().Changed(name) {
			return usagef("--%s: only with --file", name)
		}
	}
	return nil
}

// exitInvalidRows is the exit status of a batch that filed its valid rows
// and left out invalid ones (invalidRowsError).
const exitInvalidRows = 6

// invalidRowsError: some rows of a batch were invalid and not sent; the
// valid ones were filed. Exit status 6.
type invalidRowsError struct{ err error }

func (e *invalidRowsError) Error() string { return e.err.Error() }
func (e *invalidRowsError) Unwrap() error { return e.err }

// Row statuses of a batch, in the result lines and in --json.
const (
	rowInvalid      = "invalid"       // not sent: Error says why
	rowValid        = "valid"         // --dry-run: would be sent
	rowFiled        = "filed"         // published now
	rowAlreadyFiled = "already_filed" // filed by an earlier run (or the same request is on its case): not sent again
	rowFailed       = "failed"        // the publish failed
	rowNotSent      = "not_sent"      // not tried: an earlier publish failed
)

// batchRowJSON is one row's result.
type batchRowJSON struct {
	Line      int          `json:"line"`
	ID        string       `json:"id,omitempty"`
	Status    string       `json:"status"`
	Error     string       `json:"error,omitempty"`
	Duplicate bool         `json:"duplicate,omitempty"` // JetStream already held the command (an earlier run published it)
	Verdict   *verdictJSON `json:"verdict,omitempty"`

	command refundflow.Command
	ownID   bool // the row gave its id (else it is derived from the content)
}

// batchSummary counts the rows by status and by verdict.
type batchSummary struct {
	Rows         int `json:"rows"`
	Invalid      int `json:"invalid"`
	Filed        int `json:"filed"`
	AlreadyFiled int `json:"alreadyFiled"`
	Failed       int `json:"failed"`
	NotSent      int `json:"notSent"`
	Applied      int `json:"applied"`
	Rejected     int `json:"rejected"` // not counting duplicates: those are already filed
	Pending      int `json:"pending"`
}

// batchJSON is the --json output of request --file.
type batchJSON struct {
	File    string         `json:"file"`
	Format  string         `json:"format"`
	DryRun  bool           `json:"dryRun"`
	Rows    []batchRowJSON `json:"rows"`
	Summary batchSummary   `json:"summary"`
}

// batchCommandID derives a request's command id from what it asks (not
// from when or by whom), so the same row files the same command whenever
// it is run: "batch-" and 32 hex digits of a SHA-256 of the platform, the
// order, the sub-order and the request as the worker receives them.
func batchCommandID(c refundflow.Command) string {
	key, _ := json.Marshal(struct {
		Platform   refundflow.Platform  `json:"platform"`
		OrderID    string               `json:"orderId"`
		SubOrderID string               `json:"subOrderId"`
		Kind       refundflow.InputKind `json:"kind"`
		Request    *refundflow.Request  `json:"request"`
	}{c.Platform, c.OrderID, c.SubOrderID, c.Kind, c.Request}) // plain fields: cannot fail
	sum := sha256.Sum256(key)
	return "batch-" + hex.EncodeToString(sum[:16])
}

// flagName matches a flag in a message built for the command line.
var flagName = regexp.MustCompile(`--([a-z][a-z-]*[a-z])\b`)

// columnMessage rewrites a message naming request's flags (flagMessage's)
// to name the batch columns: `--sub-order: required` is `sub-order:
// required` in a file.
func columnMessage(msg string) string {
	msg = strings.TrimPrefix(msg, "invalid request_refund command: ")
	return flagName.ReplaceAllStringFunc(msg, func(m string) string {
		if name := strings.TrimPrefix(m, "--"); slices.Contains(batchColumns, name) {
			return name
		}
		return m
	})
}

// planBatch turns the rows into commands through request's own path
// (buildRequest), or says why a row cannot be one. A file has one row per
// case: a second row for a case is invalid, naming the first.
func (a *app) planBatch(rows []batchRow) []batchRowJSON {
	out := make([]batchRowJSON, len(rows))
	cases, ids := map[string]int{}, map[string]int{}
	for i, row := range rows {
		res := batchRowJSON{Line: row.Line, Status: rowInvalid}
		c, ownID, err := a.rowCommand(row)
		switch {
		case err != nil:
			res.Error = columnMessage(errorLine(err))
		case cases[c.CaseName()] > 0 && ids[c.ID] == cases[c.CaseName()]:
			res.ID, res.Error = c.ID, fmt.Sprintf("the same row as line %d", ids[c.ID])
		case cases[c.CaseName()] > 0:
			res.ID, res.Error = c.ID, fmt.Sprintf("%s is on line %d too: one row per case", c.CaseName(), cases[c.CaseName()])
		case ids[c.ID] > 0:
			res.ID, res.Error = c.ID, fmt.Sprintf("id %s is on line %d too", c.ID, ids[c.ID])
		default:
			res.ID, res.Status, res.command, res.ownID = c.ID, rowValid, c, ownID
			cases[c.CaseName()], ids[c.ID] = row.Line, row.Line
		}
		out[i] = res
	}
	return out
}

// rowCommand is the command of one row, its id derived unless the row
// gives one (ownID).
func (a *app) rowCommand(row batchRow) (c refundflow.Command, ownID bool, err error) {
	in, err := rowInput(row)
	if err != nil {
		return refundflow.Command{}, false, err
	}
	if c, err = a.buildRequest(in); err != nil {
		return refundflow.Command{}, false, err
	}
	if in.id == "" {
		c.ID = batchCommandID(c)
	}
	return c, in.id != "", nil
}

// readBatchFile reads --file (or stdin for -) and picks its format.
func readBatchFile(cmd *cobra.Command, o batchOptions) ([]byte, string, error) {
	var r io.Reader = cmd.InOrStdin()
	if o.file != "-" {
		fh, err := os.Open(o.file)
		if err != nil {
			return nil, "", usagef("--file: %w", err)
		}
		defer fh.Close()
		r = fh
	}
	const maxFile = 64 << 20
	data, err := io.ReadAll(io.LimitReader(r, maxFile+1))
	if err != nil {
		return nil, "", fmt.Errorf("--file %s: %w", o.file, err)
	}
	if len(data) > maxFile {
		return nil, "", usagef("--file %s: larger than %d MiB; split it", o.file, maxFile>>20)
	}
	format, err := batchFormat(o.format, o.file, data)
	return data, format, err
}

// requestBatch files one request per row of --file: every row checked
// first, the valid ones published (rows an earlier run filed are not sent
// again), then their verdicts awaited together. Exit status: 0 every row
// applied; 2 nothing sent (the file unreadable, --dry-run or
// --all-or-nothing with an invalid row, no valid row); 6 invalid rows left
// out, the others filed; else 4 a row rejected, 5 a verdict pending, 1 a
// publish failed (the rows after it are not sent).
func (a *app) requestBatch(cmd *cobra.Command, o batchOptions, vo verdictOptions) error {
	for _, name := range batchColumns {
		if cmd.Flags().Changed(name) {
			return usagef("--%s: with --file the rows give it (column %s); leave the flag out", name, name)
		}
	}
	if cmd.Flags().Changed("case") {
		return usagef("--case: with --file each row names its case (platform, order, sub-order)")
	}
	if !vo.noWait && vo.wait <= 0 && !o.dryRun {
		return usagef("--wait %s: must be positive (or --no-wait)", vo.wait)
	}
	data, format, err := readBatchFile(cmd, o)
	if err != nil {
		return err
	}
	rows, err := parseBatch(bytes.NewReader(data), format)
	if err != nil {
		return usagef("--file %s: %s; nothing sent", o.file, errorLine(err))
	}
	if len(rows) == 0 {
		return usagef("--file %s: no rows; nothing sent", o.file)
	}
	b := &batch{a: a, out: batchJSON{File: o.file, Format: format, DryRun: o.dryRun, Rows: a.planBatch(rows)}, wait: vo.wait}
	b.count()
	sum := b.out.Summary
	switch {
	case o.dryRun:
		return b.finish(nothingSentErr(sum, "--dry-run"))
	case sum.Invalid > 0 && o.allOrNothing:
		return b.finish(nothingSentErr(sum, "--all-or-nothing"))
	case sum.Invalid == sum.Rows:
		return b.finish(nothingSentErr(sum, "no valid row"))
	}
	ctx := cmd.Context()
	// The store (or the console) is read even with --no-wait: it says
	// which rows an earlier run filed, so that they are not sent again.
	send, err := a.batchSender(ctx)
	if err != nil {
		return fmt.Errorf("%w; nothing sent", err)
	}
	defer send.close()
	b.send = send
	if err := b.skipFiled(ctx); err != nil {
		return fmt.Errorf("%w; nothing sent", err)
	}
	if b.count(); b.out.Summary.Invalid == b.out.Summary.Rows {
		return b.finish(nothingSentErr(b.out.Summary, "no valid row"))
	}
	if err := b.publish(ctx); err != nil {
		return err
	}
	if !vo.noWait {
		if err := b.awaitVerdicts(ctx); err != nil {
			b.count() // the rows filed, not the plan
			_ = b.finish(nil)
			return fmt.Errorf("reading the verdicts: %w", err)
		}
	}
	b.count()
	return b.finish(b.exitErr())
}

// nothingSentErr is the outcome of a batch stopped after the check.
func nothingSentErr(sum batchSummary, why string) error {
	if sum.Invalid == 0 {
		return nil // --dry-run of a valid file
	}
	return usagef("%d of %d rows invalid; nothing sent (%s)", sum.Invalid, sum.Rows, why)
}

// batch is one run of request --file.
type batch struct {
	a    *app
	send batchSender
	out  batchJSON
	wait time.Duration
	bar  *progressbar.ProgressBar
}
