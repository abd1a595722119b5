package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/refundhub/refundhub/internal/excerpt"
)

// writeJSON writes v as indented JSON and a newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}

// newTable returns a tabwriter for human tables; call Flush.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}

// timeJSON formats a time for JSON output: RFC 3339 UTC with milliseconds,
// "" for the zero time (omitted with omitempty).
func timeJSON(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// timeHuman formats a time for tables.
func timeHuman(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

// ago formats the age of t relative to now, e.g. "3h12m".
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}

// cell makes a value safe for one table cell: no tabs, newlines or other
// control characters, "-" when empty, and at most max bytes (0: whole) cut
// by internal/excerpt, the product's one clipper. A byte bound is also a
// bound on the width: a Chinese character takes three bytes and two
// columns, so the cut keeps a column within max columns whatever the script.
func cell(s string, max int) string { return excerpt.Line(s, max) }

// rawJSON returns doc as a JSON value for output: the document itself when
// it is valid JSON, else a JSON string of it; null when empty.
func rawJSON(doc string) json.RawMessage {
	if doc == "" {
		return nil
	}
	if json.Valid([]byte(doc)) {
		return json.RawMessage(doc)
	}
	b, _ := json.Marshal(doc) // a string always marshals
	return b
}

// wrapWidth is the width, in characters, printWrapped fills.
const wrapWidth = 100

// printWrapped prints label and then text in full, wrapped to wrapWidth
// characters, continuation lines indented. Text without spaces (Chinese)
// is broken between characters.
func printWrapped(w io.Writer, label, text string) {
	text = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, text)
	indent := strings.Repeat(" ", 4)
	first := true
	for _, line := range wrapText(text, wrapWidth) {
		if first {
			fmt.Fprintf(w, "%s %s\n", label, line)
			first = false
			continue
		}
		fmt.Fprintf(w, "%s%s\n", indent, line)
	}
}

// wrapText splits text into lines of at most width runes, at a space when
// one is in the second half of the line.
func wrapText(text string, width int) []string {
	r := []rune(strings.TrimSpace(text))
	var out []string
	for len(r) > width {
		cut := width
		for i := width; i > width/2; i-- {
			if r[i] == ' ' {
				cut = i
				break
			}
		}
		out = append(out, strings.TrimSpace(string(r[:cut])))
		r = []rune(strings.TrimSpace(string(r[cut:])))
	}
	return append(out, string(r))
}
