// Package envconfigtest checks a command's configuration against its
// reference page in docs/: the variables the command's loading reads, the
// envconfig table that documents them (its -h) and the page's variable table
// must name the same variables. A variable read but undocumented, or
// documented but no longer read, fails the command's test.
package envconfigtest

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/refundhub/refundhub/internal/envconfig"
)

// CheckReference runs load with a getenv that answers "" (every variable
// takes its default) and records each name asked for, then fails tb unless
// those names, the names in vars and the variables documented on the page
// at path (see Documented) are the same set. load should read the whole
// configuration as the command does (its loadConfig), ignoring the errors.
func CheckReference(tb testing.TB, vars []envconfig.Var, load func(getenv func(string) string), path string) {
	tb.Helper()
	asked := map[string]bool{}
	load(func(name string) string {
		asked[name] = true
		return ""
	})
	var table []string
	for _, v := range vars {
		table = append(table, v.Name)
	}
	page, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("read the configuration reference: %v", err)
	}
	documented, err := Documented(string(page))
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	for _, n := range missing(table, sorted(asked)) {
		tb.Errorf("%s: in the command's table but never read; drop it from the table", n)
	}
	for _, n := range missing(sorted(asked), table) {
		tb.Errorf("%s: read by the command but not in its table (nor in -h); add it with its default and help", n)
	}
	Compare(tb, table, documented, path)
}

// Compare fails tb for each variable a command reads (read) that the page
// at path does not document, and for each variable the page documents that
// the command does not read.
func Compare(tb testing.TB, read, documented []string, path string) {
	tb.Helper()
	for _, n := range missing(read, documented) {
		tb.Errorf("%s: read by the command but not documented in %s; add a row to its variable table", n, path)
	}
	for _, n := range missing(documented, read) {
		tb.Errorf("%s: documented in %s but the command does not read it; remove the row", n, path)
	}
}

// missing returns, in order, the names of a that are not in b.
func missing(a, b []string) []string {
	var out []string
	for _, n := range a {
		if !slices.Contains(b, n) {
			out = append(out, n)
		}
	}
	return out
}

func sorted(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

var (
	varName  = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
	backtick = regexp.MustCompile("`([^`]*)`")
)

// Documented returns the variables a Markdown page documents: the
// backquoted names in the first cell of every row of its tables whose first
// header cell is "Variable" (one row may name several, `A`, `B`). A name
// given as a pattern (`CALLBACK_STREAM*`) is an error: the reference names
// each variable, so that a removed one can be found. A page without such a
// table is an error too.
func Documented(page string) ([]string, error) {
	var names []string
	tables := 0
	inTable := false
	for i, line := range strings.Split(page, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			inTable = false
			continue
		}
		first := strings.TrimSpace(strings.SplitN(strings.TrimPrefix(line, "|"), "|", 2)[0])
		switch {
		case !inTable && first == "Variable":
			inTable = true
			tables++
			continue
		case !inTable || strings.Trim(first, "-: ") == "":
			continue // another table, or the header's separator row
		}
		cell := backtick.FindAllStringSubmatch(first, -1)
		if len(cell) == 0 {
			return nil, fmt.Errorf("line %d: %q names no `VARIABLE`", i+1, first)
		}
		for _, m := range cell {
			if !varName.MatchString(m[1]) {
				return nil, fmt.Errorf("line %d: %q is not a variable name; name each variable", i+1, m[1])
			}
			names = append(names, m[1])
		}
	}
	if tables == 0 {
		return nil, fmt.Errorf("no variable table (a table whose first column is headed Variable)")
	}
	return names, nil
}
