package pgtest

import (
	"context"
	"database/sql"
	"os"
	"strings"
	"testing"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// TestNewDatabase: each call gives an empty database of its own that the
// password in its URL opens, on a server that is not run as root.
func TestNewDatabase(t *testing.T) {
	ctx := context.Background()
	a, b := NewDatabase(t), NewDatabase(t)
	if a == b {
		t.Fatalf("NewDatabase twice = %s both times; want two databases", a)
	}
	db, err := sql.Open("pgx", a)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `CREATE TABLE x (n INT)`); err != nil {
		t.Fatalf("create table in %s: %v", a, err)
	}
	var n int
	dbB, err := sql.Open("pgx", b)
	if err != nil {
		t.Fatal(err)
	}
	defer dbB.Close()
	if err := dbB.QueryRowContext(ctx, `SELECT COUNT(*) FROM pg_tables WHERE tablename = 'x'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("second database sees %d tables named x (err %v); want 0", n, err)
	}
	if os.Geteuid() == 0 {
		// The server's files belong to nobody: initdb would not run as root.
		st, err := os.Stat(shared.dir + "/data")
		if err != nil {
			t.Fatal(err)
		}
		if uid := fileUID(st); uid == 0 {
			t.Fatalf("data directory owned by uid 0; want the unprivileged user's")
		}
	}
	bad := strings.Replace(a, shared.password, "wrong", 1)
	dbBad, _ := sql.Open("pgx", bad)
	defer dbBad.Close()
	if err := dbBad.PingContext(ctx); err == nil {
		t.Fatalf("connect with a wrong password succeeded; want the password checked")
	}
}
