// Package runbook reads the operator's runbook (docs/runbook.md, embedded
// by the root package) into rows: for every case state and attention
// reason, what it means and what to do. The runbook is the one owner of
// that advice; the console shows it from here rather than keeping its own
// shorter copy, and docs/runbook_test.go keeps the runbook complete.
package runbook

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/refundhub/refundhub"
	"github.com/refundhub/refundhub/internal/platform"
)

// Row is one row of the runbook's States or Attention reasons table, as
// plain text: inline code marks dropped, links reduced to their text.
type Row struct {
	Means string
	Do    string
}

// Book is the runbook's two tables, by state and by attention reason.
type Book struct {
	States  map[string]Row
	Reasons map[string]Row
}

var (
	sectionRe = regexp.MustCompile(`(?m)^## (.+)$`)
	rowRe     = regexp.MustCompile("^\\| `([a-z_]+)` \\|(.*)\\|(.*)\\|\\s*$")
	linkRe    = regexp.MustCompile(`\[([^\]]+)\]\(([^)#]*)(#[^)]*)?\)`)
)

// Parse reads a runbook in docs/runbook.md's form. It fails when either
// table is missing or empty, or a row is not "| `name` | means | do |":
// a runbook the console cannot read is a build error, not a blank page.
func Parse(md string) (Book, error) {
	b := Book{States: map[string]Row{}, Reasons: map[string]Row{}}
	tables := map[string]map[string]Row{"States": b.States, "Attention reasons": b.Reasons}
	locs := sectionRe.FindAllStringSubmatchIndex(md, -1)
	for i, loc := range locs {
		into, ok := tables[md[loc[2]:loc[3]]]
		if !ok {
			continue
		}
		end := len(md)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		for n, line := range strings.Split(md[loc[1]:end], "\n") {
			if !strings.HasPrefix(line, "| `") {
				continue
			}
			m := rowRe.FindStringSubmatch(line)
			if m == nil {
				return Book{}, fmt.Errorf("runbook: section %q, line %d: want | `name` | means | what to do |", md[loc[2]:loc[3]], n)
			}
			into[m[1]] = Row{Means: Plain(m[2]), Do: Plain(m[3])}
		}
	}
	for name, t := range tables {
		if len(t) == 0 {
			return Book{}, fmt.Errorf("runbook: no rows in section %q", name)
		}
	}
	return b, nil
}

// Plain is a table cell as text: trimmed, inline code and bold marks
// dropped, a link replaced by its text. A link that only names another
// page of docs/ ("[platform](platform.md#profile)") becomes that page's
// path with its section, docs/platform.md#profile: printed by refundctl,
// its name alone ("(refundctl)") told the reader nothing.
func Plain(cell string) string {
	s := linkRe.ReplaceAllStringFunc(strings.TrimSpace(cell), func(m string) string {
		sub := linkRe.FindStringSubmatch(m)
		if text, file, section := sub[1], sub[2], sub[3]; file == text+".md" {
			return "docs/" + file + section
		}
		return sub[1]
	})
	return strings.NewReplacer("`", "", "**", "").Replace(s)
}

// caseArg is a refundctl command the runbook writes for any case: its
// CASE or N placeholder.
var caseArg = regexp.MustCompile(`\b(refundctl [a-z-]+) (?:CASE|N)\b`)

// ForCase is advice the runbook writes for any case, said of case id:
// "refundctl modify CASE --amount …" becomes "refundctl modify 12
// --amount …", a command the operator can run as it stands.
func ForCase(advice string, id int64) string {
	if id <= 0 {
		return advice
	}
	return caseArg.ReplaceAllString(advice, "${1} "+strconv.FormatInt(id, 10))
}

// sentenceEnd is where one of the runbook's sentences ends and the next
// begins, in its plain text (Plain): a full stop, a space, and a letter
// or digit (a sentence may open with a command: "refundctl resolve …").
// The runbook writes no abbreviations with a full stop
// (TestRunbookWritesNoAbbreviations).
var sentenceEnd = regexp.MustCompile(`\. ([A-Za-z0-9])`)

// Tailor is advice the runbook writes for every case of an attention
// code, left with the sentences that apply to a case on platform plat
// (platform.Taobao or platform.Alibaba1688; "" for any) stopped at parked ("" when not known): a sentence
// that opens with "Taobao:" is for Taobao alone, one that opens with
// "1688:" for 1688 alone, one that opens with "Stopped at STATE" (or
// "Stopped at STATE, STATE or STATE") for a case stopped there (the
// runbook's introduction says so to its writers). What it cannot place
// stays.
func Tailor(advice, plat, parked string) string {
	idx := sentenceEnd.FindAllStringSubmatchIndex(advice, -1)
	var kept []string
	start := 0
	keep := func(s string) {
		switch {
		case plat == string(platform.Alibaba1688) && strings.HasPrefix(s, "Taobao:"),
			plat == string(platform.Taobao) && strings.HasPrefix(s, "1688:"):
			return
		case parked != "" && strings.HasPrefix(s, "Stopped at "):
			if at := stops(s); len(at) > 0 && !slices.Contains(at, parked) {
				return
			}
		}
		kept = append(kept, s)
	}
	for _, m := range idx {
		keep(advice[start : m[0]+1]) // with its full stop
		start = m[2]
	}
	keep(advice[start:])
	if len(kept) == 0 {
		return advice
	}
	return strings.Join(kept, " ")
}

// stops are the states a "Stopped at …" sentence names: before its colon
// or its parenthesis, separated by commas and "or".
func stops(sentence string) []string {
	rest := strings.TrimPrefix(sentence, "Stopped at ")
	if i := strings.IndexAny(rest, ":("); i >= 0 {
		rest = rest[:i]
	}
	var out []string
	for _, part := range strings.Split(strings.ReplaceAll(rest, " or ", ","), ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// Embedded is the runbook this build carries. It panics if the runbook
// cannot be read, which TestEmbedded catches before any build ships.
func Embedded() Book {
	b, err := Parse(refundhub.Runbook)
	if err != nil {
		panic(err)
	}
	return b
}
