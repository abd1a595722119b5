package casestore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func testPasswords(t *testing.T) *Passwords {
	t.Helper()
	return NewPasswords()
}

func addAccount(t *testing.T, s *Store, _ *Passwords, name string, role Role, pw string) error {
	t.Helper()
	h, err := HashPassword(pw, bcrypt.MinCost)
	if err != nil {
		t.Fatalf("Hash: %v", err)
	}
	ctx := context.Background()
	return s.Update(ctx, func(tx *Tx) error {
		return tx.AddAccount(ctx, NewAccount{Name: name, Role: role, PasswordHash: h, By: "root"})
	})
}

// TestAccounts: an account is added once (a second with its name, even
// after it was disabled, is refused), logs in with its password only, is
// listed with its token count, and once disabled no longer logs in; a
// second disable and a disable of an unknown name are refused and change
// nothing. The password is not stored in clear.
func TestAccounts(t *testing.T) { eachBackend(t, testAccounts) }

func testAccounts(t *testing.T, be backend) {
	ctx := context.Background()
	s := openTest(t, be.Fresh(t))
	at := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return at }
	p := testPasswords(t)
	const pw = "correct horse battery"
	if err := addAccount(t, s, p, "olga", RoleOperator, pw); err != nil {
		t.Fatalf("AddAccount(olga): %v", err)
	}
	if err := addAccount(t, s, p, "vic", RoleViewer, "another password"); err != nil {
		t.Fatalf("AddAccount(vic): %v", err)
	}
	if err := addAccount(t, s, p, "olga", RoleViewer, "a third password"); !errors.Is(err, ErrAccountExists) {
		t.Errorf("AddAccount(olga) again = %v; want ErrAccountExists", err)
	}
	for _, bad := range []NewAccount{{Name: "a b", Role: RoleViewer}, {Name: "x", Role: "root"}, {Name: "y", Role: RoleViewer, PasswordHash: []byte(pw)}} {
		if h, _ := HashPassword(pw, bcrypt.MinCost); bad.PasswordHash == nil {
			bad.PasswordHash = h
		}
		err := s.Update(ctx, func(tx *Tx) error { return tx.AddAccount(ctx, bad) })
		if err == nil {
			t.Errorf("AddAccount(%q, %q) = nil; want an error", bad.Name, bad.Role)
		} else if strings.Contains(err.Error(), pw) {
			t.Errorf("AddAccount error quotes the password: %v", err)
		}
	}

	var hashes []string
	if err := s.r.SelectContext(ctx, &hashes, `SELECT password_hash FROM console_accounts`); err != nil {
		t.Fatal(err)
	}
	for _, h := range hashes {
		if strings.Contains(h, pw) || !strings.HasPrefix(h, "$2a$") {
			t.Errorf("stored password %q: want a bcrypt hash, not the password", h)
		}
	}

	if a, err := p.Login(ctx, s, "olga", pw); err != nil || a.Name != "olga" || a.Role != RoleOperator {
		t.Errorf("Login(olga, right password) = %+v, %v; want olga, operator", a, err)
	}
	for _, tc := range []struct{ name, pw string }{{"olga", "wrong password!"}, {"nobody", pw}, {"olga", ""}} {
		if _, err := p.Login(ctx, s, tc.name, tc.pw); !errors.Is(err, ErrWrongPassword) {
			t.Errorf("Login(%s, %q) = %v; want ErrWrongPassword", tc.name, tc.pw, err)
		}
	}

	// The unknown name was compared against a dummy at the accounts' cost
	// (MinCost here), not the default: its time matches a known name's.
	if len(p.dummies) != 1 || p.dummies[bcrypt.MinCost] == nil {
		t.Errorf("dummy hashes by cost: %d, MinCost one %v; want only one at the accounts' cost", len(p.dummies), p.dummies[bcrypt.MinCost] != nil)
	}

	at = at.Add(time.Hour)
	if err := s.Update(ctx, func(tx *Tx) error { return tx.DisableAccount(ctx, "olga", "root", "left the team") }); err != nil {
		t.Fatalf("DisableAccount(olga): %v", err)
	}
	if _, err := p.Login(ctx, s, "olga", pw); !errors.Is(err, ErrWrongPassword) {
		t.Errorf("Login(disabled olga) = %v; want ErrWrongPassword", err)
	}
	if err := s.Update(ctx, func(tx *Tx) error { return tx.DisableAccount(ctx, "olga", "other", "again") }); !errors.Is(err, ErrAccountDisabled) {
		t.Errorf("DisableAccount(olga) again = %v; want ErrAccountDisabled", err)
	}
	if err := s.Update(ctx, func(tx *Tx) error { return tx.DisableAccount(ctx, "nobody", "root", "x") }); !errors.Is(err, ErrNotFound) {
		t.Errorf("DisableAccount(nobody) = %v; want ErrNotFound", err)
	}
	if err := addAccount(t, s, p, "olga", RoleOperator, pw); !errors.Is(err, ErrAccountExists) {
		t.Errorf("AddAccount(olga) after disabling = %v; want ErrAccountExists (names are never reused)", err)
	}
	all, err := s.Accounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].Name != "olga" || all[1].Name != "vic" {
		t.Fatalf("Accounts = %+v; want olga, vic", all)
	}
	o := all[0]
	if !o.Disabled() || !o.DisabledAt.Equal(at) || o.DisabledBy != "root" || o.DisableNote != "left the team" || o.CreatedBy != "root" {
		t.Errorf("olga = %+v; want disabled at %v by root, 'left the team' (the first record)", o, at)
	}
	if all[1].Disabled() {
		t.Errorf("vic is disabled: %+v", all[1])
	}
}

// TestTokens: a token is found by itself only while neither it is revoked
// nor its account disabled; revoking twice or an unknown id is refused; a
// disabled or unknown account gets no token; only the SHA-256 is stored.
func TestTokens(t *testing.T) { eachBackend(t, testTokens) }

func testTokens(t *testing.T, be backend) {
	ctx := context.Background()
	s := openTest(t, be.Fresh(t))
	p := testPasswords(t)
	for _, n := range []string{"olga", "vic"} {
		if err := addAccount(t, s, p, n, RoleOperator, "password of "+n); err != nil {
			t.Fatal(err)
		}
	}
	add := func(account, label string) (string, APIToken, error) {
		tok, err := NewToken()
		if err != nil {
			t.Fatal(err)
		}
		var rec APIToken
		err = s.Update(ctx, func(tx *Tx) error {
			var err error
			rec, err = tx.AddToken(ctx, NewAPIToken{Account: account, Label: label, Hash: HashToken(tok), By: "root"})
			return err
		})
		return tok, rec, err
	}
	tokA, recA, err := add("olga", "laptop")
	if err != nil {
		t.Fatalf("AddToken(olga): %v", err)
	}
	tokB, _, err := add("olga", "prometheus")
	if err != nil {
		t.Fatal(err)
	}
	tokV, _, err := add("vic", "laptop")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tokA, TokenPrefix) || len(tokA) != len(TokenPrefix)+43 || tokA == tokB {
		t.Errorf("NewToken = %q, %q; want distinct %s + 43 characters", tokA, tokB, TokenPrefix)
	}
	if _, _, err := add("nobody", "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("AddToken(nobody) = %v; want ErrNotFound", err)
	}
	var stored []string
	if err := s.r.SelectContext(ctx, &stored, `SELECT token_sha256 FROM console_tokens`); err != nil {
		t.Fatal(err)
	}
	for _, h := range stored {
		for _, tok := range []string{tokA, tokB, tokV} {
			if strings.Contains(h, tok) || strings.Contains(h, strings.TrimPrefix(tok, TokenPrefix)) {
				t.Errorf("a stored token hash %q holds a token", h)
			}
		}
	}
	if a, rec, err := s.AccountByToken(ctx, tokA); err != nil || a.Name != "olga" || rec.ID != recA.ID || rec.Label != "laptop" {
		t.Errorf("AccountByToken(A) = %s, %+v, %v; want olga's laptop token %d", a.Name, rec, err, recA.ID)
	}
	if _, _, err := s.AccountByToken(ctx, "rhc_not-a-token"); !errors.Is(err, ErrNotFound) {
		t.Errorf("AccountByToken(unknown) = %v; want ErrNotFound", err)
	}

	if err := s.Update(ctx, func(tx *Tx) error { return tx.RevokeToken(ctx, recA.ID, "root", "laptop lost") }); err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	if _, _, err := s.AccountByToken(ctx, tokA); !errors.Is(err, ErrNotFound) {
		t.Errorf("AccountByToken(revoked) = %v; want ErrNotFound", err)
	}
	if _, _, err := s.AccountByToken(ctx, tokB); err != nil {
		t.Errorf("AccountByToken(B) after revoking A = %v; want olga", err)
	}
	if err := s.Update(ctx, func(tx *Tx) error { return tx.RevokeToken(ctx, recA.ID, "x", "again") }); !errors.Is(err, ErrTokenRevoked) {
		t.Errorf("RevokeToken again = %v; want ErrTokenRevoked", err)
	}
	if err := s.Update(ctx, func(tx *Tx) error { return tx.RevokeToken(ctx, 999, "x", "y") }); !errors.Is(err, ErrNotFound) {
		t.Errorf("RevokeToken(999) = %v; want ErrNotFound", err)
	}
	if got, err := s.Token(ctx, recA.ID); err != nil || got.RevokedBy != "root" || got.RevokeNote != "laptop lost" || !got.Revoked() {
		t.Errorf("Token(A) = %+v, %v; want revoked by root, 'laptop lost' (the first record)", got, err)
	}

	if err := s.Update(ctx, func(tx *Tx) error { return tx.DisableAccount(ctx, "olga", "root", "left") }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.AccountByToken(ctx, tokB); !errors.Is(err, ErrNotFound) {
		t.Errorf("AccountByToken(B) of a disabled account = %v; want ErrNotFound", err)
	}
	if _, _, err := add("olga", "new"); !errors.Is(err, ErrAccountDisabled) {
		t.Errorf("AddToken(disabled olga) = %v; want ErrAccountDisabled", err)
	}
	if _, _, err := s.AccountByToken(ctx, tokV); err != nil {
		t.Errorf("AccountByToken(vic's) = %v; want vic", err)
	}
	olgas, err := s.Tokens(ctx, "olga")
	if err != nil || len(olgas) != 2 {
		t.Fatalf("Tokens(olga) = %+v, %v; want 2", olgas, err)
	}
	all, err := s.Tokens(ctx, "")
	if err != nil || len(all) != 3 {
		t.Errorf("Tokens() = %d, %v; want 3", len(all), err)
	}
	accs, err := s.Accounts(ctx)
	if err != nil || accs[0].Tokens != 1 || accs[1].Tokens != 1 {
		t.Errorf("Accounts token counts = %+v, %v; want 1 (olga: one revoked) and 1", accs, err)
	}
}

// TestPasswordRules: too short and too long (bcrypt would cut it)
// passwords are refused, without quoting them.
func TestPasswordRules(t *testing.T) {
	for _, pw := range []string{"short", strings.Repeat("x", MaxPasswordLen+1)} {
		if _, err := HashPassword(pw, bcrypt.MinCost); err == nil || strings.Contains(err.Error(), pw) {
			t.Errorf("HashPassword(%d bytes) = %v; want an error not quoting it", len(pw), err)
		}
	}
	if _, err := HashPassword("long enough password", bcrypt.MaxCost+1); err == nil {
		t.Error("HashPassword at MaxCost+1 = nil error")
	}
	gen, err := NewPassword()
	if err != nil || CheckPassword(gen) != nil {
		t.Errorf("NewPassword = %q, %v; want a valid password", gen, err)
	}
}
