// Package accountstest adds console accounts to a case store for tests, as
// `refundctl console users add` and `console tokens add` would, so that
// the console's, refundctl's and cmd/console's tests seed them one way.
// Passwords are hashed at bcrypt's lowest cost: a test's logins would
// otherwise take a second each under the race detector.
package accountstest

import (
	"context"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/refundhub/refundhub/internal/casestore"
)

// Account is one console account to add, with one API token.
type Account struct {
	Name, Password, Token string
	Role                  casestore.Role
}

// Add stores each account with its password and token in w, failing the
// test on any error.
func Add(t testing.TB, w *casestore.Store, accounts ...Account) {
	t.Helper()
	ctx := context.Background()
	for _, a := range accounts {
		h, err := casestore.HashPassword(a.Password, bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		err = w.Update(ctx, func(tx *casestore.Tx) error {
			if err := tx.AddAccount(ctx, casestore.NewAccount{Name: a.Name, Role: a.Role, PasswordHash: h, By: "test"}); err != nil {
				return err
			}
			_, err := tx.AddToken(ctx, casestore.NewAPIToken{Account: a.Name, Label: "test", Hash: casestore.HashToken(a.Token), By: "test"})
			return err
		})
		if err != nil {
			t.Fatalf("seed console account %s: %v", a.Name, err)
		}
	}
}

// AddAt opens the store at target (a file or a URL) for writing, adds the
// accounts and closes it.
func AddAt(t testing.TB, target string, accounts ...Account) {
	t.Helper()
	w, err := casestore.OpenExisting(context.Background(), target, nil)
	if err != nil {
		t.Fatalf("OpenExisting: %v", err)
	}
	defer w.Close()
	Add(t, w, accounts...)
}
