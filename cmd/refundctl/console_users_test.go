package main

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/refundhub/refundhub/internal/casestore"
)

// withStdin runs f with os.Stdin reading text: run reads stdin as main
// does, through cobra's InOrStdin. refundctl's tests do not run in
// parallel, so swapping the process's stdin for the call is safe.
func withStdin(t *testing.T, text string, f func()) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteString(text); err != nil {
		t.Fatal(err)
	}
	w.Close()
	old := os.Stdin
	os.Stdin = r
	defer func() { os.Stdin = old; r.Close() }()
	f()
}

// consoleState is what the console commands write: the accounts and the
// token records, for "nothing changed" checks.
func consoleState(t *testing.T, st *casestore.Store) string {
	t.Helper()
	ctx := context.Background()
	accounts, err := st.Accounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := st.Tokens(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, a := range accounts {
		b.WriteString(a.Name + " " + string(a.Role) + " " + a.DisabledAt.String() + " " + a.DisableNote + "\n")
	}
	for _, tok := range tokens {
		b.WriteString(tok.Account + " " + tok.Label + " " + tok.RevokedAt.String() + " " + tok.RevokeNote + "\n")
	}
	return b.String()
}

// lowCost hashes at bcrypt's lowest cost: the production cost takes
// seconds per hash under the race detector.
const lowCost = "--bcrypt-cost=4"

var generatedPassword = regexp.MustCompile(`(?m)^password: (\S+)$`)
var printedToken = regexp.MustCompile(`(?m)^(` + casestore.TokenPrefix + `\S+)$`)

// TestConsoleUsersAndTokens: users add (a generated password printed once,
// or one read from stdin), list and disable; tokens add (printed once, with
// how to send it), list and revoke; the store holds hashes only, and what
// refundctl wrote is what the console's checks read.
func TestConsoleUsersAndTokens(t *testing.T) {
	e := newEnv(t)
	st := e.openStore()
	ctx := context.Background()
	passwords := casestore.NewPasswords()

	out := e.mustRun("console", "users", "add", "olga", "--role", "operator", lowCost).stdout
	m := generatedPassword.FindStringSubmatch(out)
	if !strings.HasPrefix(out, "added operator account olga\n") || m == nil {
		t.Fatalf("users add printed %q; want the account and its generated password", out)
	}
	olgaPassword := m[1]
	if err := casestore.CheckPassword(olgaPassword); err != nil || len(olgaPassword) < 20 {
		t.Errorf("generated password %q: %v; want a long valid one", olgaPassword, err)
	}
	if a, err := passwords.Login(ctx, st, "olga", olgaPassword); err != nil || a.Role != casestore.RoleOperator {
		t.Errorf("login with the printed password = %+v, %v; want olga, operator", a, err)
	}

	const vicPassword = "vic-chose-this-one"
	withStdin(t, vicPassword+"\n", func() {
		out = e.mustRun("console", "users", "add", "vic", "--role", "viewer", "--password-stdin", lowCost).stdout
	})
	if out != "added viewer account vic\n" {
		t.Errorf("users add --password-stdin printed %q; want the account only (no password)", out)
	}
	if _, err := passwords.Login(ctx, st, "vic", vicPassword); err != nil {
		t.Errorf("login with the password given on stdin: %v", err)
	}

	ro := e.openStoreRO()
	accounts, err := ro.Accounts(ctx)
	if err != nil || len(accounts) != 2 || accounts[0].CreatedBy != "tester" {
		t.Fatalf("Accounts = %+v, %v; want olga and vic, created by tester", accounts, err)
	}

	list := e.mustRun("console", "users", "list", "--json").stdout
	var listed []accountJSON
	decodeJSON(t, list, &listed)
	if len(listed) != 2 || listed[0].Name != "olga" || listed[0].Role != "operator" || listed[1].Name != "vic" {
		t.Errorf("users list --json = %+v; want olga (operator), vic", listed)
	}
	if human := e.mustRun("console", "users", "list").stdout; !strings.Contains(human, "olga") || !strings.Contains(human, "active") {
		t.Errorf("users list = %q; want olga, active", human)
	}

	out = e.mustRun("console", "tokens", "add", "--user", "olga", "--label", "laptop").stdout
	tm := printedToken.FindStringSubmatch(out)
	if tm == nil || !strings.Contains(out, "Authorization: Bearer <token>") || !strings.HasPrefix(out, "token 1 for olga (laptop):") {
		t.Fatalf("tokens add printed %q; want the token once and how to send it", out)
	}
	token := tm[1]
	if a, rec, err := ro.AccountByToken(ctx, token); err != nil || a.Name != "olga" || rec.Label != "laptop" {
		t.Errorf("the printed token finds %q %+v, %v; want olga's laptop token", a.Name, rec, err)
	}
	var jtok tokenJSON
	decodeJSON(t, e.mustRun("console", "tokens", "add", "--user", "vic", "--label", "prometheus", "--json").stdout, &jtok)
	if jtok.ID != 2 || jtok.User != "vic" || !strings.HasPrefix(jtok.Token, casestore.TokenPrefix) {
		t.Errorf("tokens add --json = %+v; want token 2 of vic with the token", jtok)
	}

	// Only hashes are stored, and no list shows a secret or a hash.
	rows := e.rawRows(`SELECT password_hash FROM console_accounts UNION ALL SELECT token_sha256 FROM console_tokens`)
	secrets := []string{olgaPassword, vicPassword, token, jtok.Token}
	lists := e.mustRun("console", "users", "list", "--json").stdout + e.mustRun("console", "tokens", "list", "--json").stdout +
		e.mustRun("console", "users", "list").stdout + e.mustRun("console", "tokens", "list").stdout
	for _, row := range rows {
		for _, s := range secrets {
			if strings.Contains(row, s) {
				t.Errorf("a stored row holds a password or token in clear: %.12q…", row)
			}
		}
		if strings.Contains(lists, row) {
			t.Errorf("a list shows a stored hash (%.12q…)", row)
		}
	}
	for _, s := range secrets {
		if strings.Contains(lists, s) {
			t.Errorf("a list shows a password or token (%.6q…)", s)
		}
	}

	out = e.mustRun("console", "tokens", "revoke", "1", "--note", "laptop lost").stdout
	if !strings.HasPrefix(out, "revoked token 1 of olga (laptop) at ") || !strings.Contains(out, "by tester: laptop lost") {
		t.Errorf("tokens revoke printed %q", out)
	}
	if _, _, err := ro.AccountByToken(ctx, token); !errors.Is(err, casestore.ErrNotFound) {
		t.Errorf("the revoked token still finds its account: %v", err)
	}
	out = e.mustRun("console", "users", "disable", "vic", "--note", "left the team").stdout
	if !strings.HasPrefix(out, "disabled account vic at ") || !strings.Contains(out, "left the team") {
		t.Errorf("users disable printed %q", out)
	}
	if _, _, err := ro.AccountByToken(ctx, jtok.Token); !errors.Is(err, casestore.ErrNotFound) {
		t.Errorf("a disabled account's token still finds it: %v", err)
	}
	var tokens []tokenJSON
	decodeJSON(t, e.mustRun("console", "tokens", "list", "--user", "olga", "--json").stdout, &tokens)
	if len(tokens) != 1 || tokens[0].RevokedBy != "tester" || tokens[0].RevokeNote != "laptop lost" {
		t.Errorf("tokens list --user olga = %+v; want the revoked laptop token", tokens)
	}
}

// TestConsoleUsersBadInput: bad input is a one-line error naming the flag
// or argument, with the documented exit status (2 usage, 1 not found, 4
// refused), and changes nothing.
func TestConsoleUsersBadInput(t *testing.T) {
	e := newEnv(t)
	st := e.openStore()
	e.mustRun("console", "users", "add", "olga", "--role", "operator", lowCost)
	e.mustRun("console", "users", "add", "gone", "--role", "viewer", lowCost)
	e.mustRun("console", "users", "disable", "gone", "--note", "left")
	e.mustRun("console", "tokens", "add", "--user", "olga", "--label", "laptop")
	e.mustRun("console", "tokens", "revoke", "1", "--note", "lost")
	before := consoleState(t, st)
	for _, tc := range []struct {
		stdin string
		code  int
		want  string
		args  []string
	}{
		{"", 2, `NAME "a b"`, []string{"users", "add", "a b", "--role", "viewer"}},
		{"", 2, "--role: required", []string{"users", "add", "x"}},
		{"", 2, `--role "admin"`, []string{"users", "add", "x", "--role", "admin"}},
		{"", 2, "--bcrypt-cost 99", []string{"users", "add", "x", "--role", "viewer", "--bcrypt-cost", "99"}},
		{"short\n", 2, "--password-stdin", []string{"users", "add", "x", "--role", "viewer", "--password-stdin"}},
		{strings.Repeat("p", 73), 2, "--password-stdin", []string{"users", "add", "x", "--role", "viewer", "--password-stdin"}},
		{"", 2, "accepts 1 arg", []string{"users", "add", "--role", "viewer"}},
		{"", 4, "account olga exists already", []string{"users", "add", "olga", "--role", "viewer"}},
		{"", 4, "account gone exists already", []string{"users", "add", "gone", "--role", "viewer"}},
		{"", 2, "--note", []string{"users", "disable", "olga"}},
		{"", 2, "--note: 501 characters", []string{"users", "disable", "olga", "--note", strings.Repeat("n", 501)}},
		{"", 1, "no console account nobody", []string{"users", "disable", "nobody", "--note", "x"}},
		{"", 4, "account gone was already disabled", []string{"users", "disable", "gone", "--note", "again"}},
		{"", 2, "--label", []string{"tokens", "add", "--user", "olga"}},
		{"", 2, "--user: required", []string{"tokens", "add", "--label", "x"}},
		{"", 2, `--user "a b"`, []string{"tokens", "add", "--user", "a b", "--label", "x"}},
		{"", 1, "--user nobody: no such console account", []string{"tokens", "add", "--user", "nobody", "--label", "x"}},
		{"", 4, "--user gone: the account is disabled", []string{"tokens", "add", "--user", "gone", "--label", "x"}},
		{"", 2, `token id "abc"`, []string{"tokens", "revoke", "abc", "--note", "x"}},
		{"", 2, "--note", []string{"tokens", "revoke", "1"}},
		{"", 1, "token 99 not found", []string{"tokens", "revoke", "99", "--note", "x"}},
		{"", 4, "token 1 was already revoked", []string{"tokens", "revoke", "1", "--note", "again"}},
		{"", 1, "--user nobody", []string{"tokens", "list", "--user", "nobody"}},
	} {
		args := append([]string{"console"}, tc.args...)
		r := result{}
		withStdin(t, tc.stdin, func() { r = e.wantErr(tc.code, tc.want, args...) })
		if r.stdout != "" {
			t.Errorf("refundctl %s: stdout %q; want nothing", strings.Join(args, " "), r.stdout)
		}
		if strings.Contains(r.line(), "short") || strings.Contains(r.line(), strings.Repeat("p", 20)) {
			t.Errorf("refundctl %s: the error quotes the password: %s", strings.Join(args, " "), r.line())
		}
		if after := consoleState(t, st); after != before {
			t.Errorf("refundctl %s changed the accounts or tokens:\n%s\nwant\n%s", strings.Join(args, " "), after, before)
		}
	}
	e.vars["DB_PATH"] = e.dbPath + ".missing"
	e.wantErr(1, "no case store at", "console", "users", "list")
	if _, err := os.Stat(e.dbPath + ".missing"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("users list created a store at a mistyped path: %v", err)
	}
}

// rawRows reads one text column straight from the file, as anyone
// holding the file could.
func (e *env) rawRows(query string) []string {
	e.t.Helper()
	db, err := sql.Open("sqlite3", "file:"+e.dbPath+"?mode=ro")
	if err != nil {
		e.t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(query)
	if err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	if len(out) == 0 {
		e.t.Fatalf("%s: no rows", query)
	}
	return out
}
