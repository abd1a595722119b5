package main

import (
	"io"
	"strings"

	"github.com/refundhub/refundhub/internal/casecsv"
	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/excerpt"
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

// writeCasesCSV writes cases as the console's export does (package casecsv
// owns the columns): a batch file's columns, so that the file, edited in a
// spreadsheet, is a `request --file` again, then the case's own.
func writeCasesCSV(w io.Writer, cases []casestore.Case) error {
	cw := casecsv.NewWriter(w)
	for _, c := range cases {
		if err := cw.Write(c); err != nil {
			return err
		}
	}
	return cw.Flush()
}
