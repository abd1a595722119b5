package envconfig

import (
	"errors"
	"strings"

	"github.com/refundhub/refundhub/internal/casestore"
)

// StoreURLVar documents DB_URL, the PostgreSQL case store. The worker,
// refundctl and the console list it beside their own DB_PATH entry and read
// both with Reader.Store, so the three choose the store by one rule.
func StoreURLVar() Var {
	return V("DB_URL", "", "PostgreSQL case store instead of DB_PATH's SQLite file: postgres://user:password@host:5432/dbname?sslmode=verify-full (the database must exist; the worker migrates it); the password is never printed; see docs/postgres.md")
}

// Store returns the case store to open, for casestore's open functions:
// DB_URL when set, else DB_PATH. A DB_URL that is not a postgres:// or
// postgresql:// URL is an error that does not quote it (it may hold a
// password), and Store then returns "".
func (r *Reader) Store() string {
	path := r.String("DB_PATH")
	dbURL := strings.TrimSpace(r.getenv("DB_URL")) // may hold a password: read directly, never quoted
	switch {
	case dbURL == "":
		return path
	case !casestore.IsURL(dbURL):
		r.Fail(errors.New("DB_URL must be a postgres:// or postgresql:// URL (for a SQLite file set DB_PATH instead)"))
		return ""
	}
	return dbURL
}
