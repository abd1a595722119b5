package main

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/spf13/cobra"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/envconfig"
)

// The names --from and --to take for "the store the environment names":
// `migrate-store --from sqlite --to postgres` reads DB_PATH and DB_URL.
const (
	fromEnv = "sqlite"
	toEnv   = "postgres"
)

// migrateStoreJSON is migrate-store's --json output.
type migrateStoreJSON struct {
	casestore.MigrateReport
	Match   bool    `json:"match"` // every table's counts agree (a dry run: true)
	Seconds float64 `json:"seconds"`
}

func (a *app) migrateStoreCommand() *cobra.Command {
	var from, to string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "migrate-store [--from PATH|sqlite] [--to URL|postgres] [--dry-run]",
		Short: "Copy a SQLite case store's whole history into an empty PostgreSQL one (workers stopped)",
		Long: "migrate-store moves an installation from SQLite to PostgreSQL in one pass: every table,\n" +
			"ids and columns preserved, in one PostgreSQL transaction; then every table's rows are counted\n" +
			"on both sides (exit 0 only when all match). It creates the target's tables as a worker would,\n" +
			"and refuses (exit 4, nothing written) while any case lease in the source is unexpired (stop the\n" +
			"workers first), when the target holds any row, or when the schemas differ. The source is locked\n" +
			"against writes while it is read. --dry-run checks and counts, writing nothing.\n" +
			"Steps: docs/postgres.md, \"Moving from SQLite\".",
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			return a.migrateStore(cmd, from, to, dryRun)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", fromEnv, "the SQLite case store to copy: a file path, or sqlite for DB_PATH's")
	f.StringVar(&to, "to", toEnv, "the PostgreSQL database to copy into: a postgres:// URL, or postgres for DB_URL's (the URL shows in ps: prefer DB_URL)")
	f.BoolVar(&dryRun, "dry-run", false, "check and count, writing nothing")
	return cmd
}

// migrateStore resolves the two stores, runs casestore.MigrateStore and
// reports every table's counts.
func (a *app) migrateStore(cmd *cobra.Command, from, to string, dryRun bool) error {
	if cmd.Flags().Changed("db") {
		return usagef("--db: migrate-store names its stores with --from (SQLite) and --to (PostgreSQL)")
	}
	env := envconfig.NewReader(envVars, a.getenv)
	switch {
	case from == fromEnv:
		from = env.String("DB_PATH")
	case strings.TrimSpace(from) == "":
		return usagef("--from: empty; want the SQLite file's path, or %s for DB_PATH's", fromEnv)
	case casestore.IsURL(from):
		return usagef("--from %s: want a SQLite file (the store to copy from), not a URL", casestore.Redact(from))
	}
	if to == toEnv {
		to = strings.TrimSpace(a.getenv("DB_URL")) // may hold a password: never quoted
		if to == "" {
			return usagef("--to %s: DB_URL is not set; set it to the PostgreSQL database, or give --to postgres://…", toEnv)
		}
	}
	if !casestore.IsURL(to) {
		// Not quoted: a mistyped URL may still hold a password.
		return usagef("--to: want a postgres:// or postgresql:// URL, or %s for DB_URL's (the value is not shown: it may hold a password)", toEnv)
	}
	rep, err := casestore.MigrateStore(cmd.Context(), from, to, casestore.MigrateOptions{DryRun: dryRun, Now: a.now})
	var refusal *casestore.MigrateRefusal
	switch {
	case errors.As(err, &refusal):
		return refusedf("migrate-store: %s; nothing was written", refusal.Reason)
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("no case store at %s (set DB_PATH or --from)", from)
	case err != nil:
		return err
	}
	if a.cfg.JSON {
		if err := writeJSON(a.stdout, migrateStoreJSON{MigrateReport: rep, Match: rep.Match(), Seconds: rep.Elapsed.Seconds()}); err != nil {
			return err
		}
	} else if err := a.printMigrateReport(rep); err != nil {
		return err
	}
	if !rep.Match() {
		return fmt.Errorf("migrate-store: the target's row counts differ from the source's (above)")
	}
	return nil
}

func (a *app) printMigrateReport(rep casestore.MigrateReport) error {
	w := a.stdout
	if rep.DryRun {
		fmt.Fprintln(w, "dry run: nothing written")
	}
	fmt.Fprintf(w, "from  %s (SQLite, schema %d)\n", rep.From, rep.SchemaVersion)
	fmt.Fprintf(w, "to    %s (PostgreSQL)\n", rep.To)
	fmt.Fprintln(w, "checks: same schema version on both; no unexpired case lease; same tables and columns; target empty")
	tw := newTable(w)
	fmt.Fprintln(tw, "TABLE\tSOURCE\tTARGET\tNEXT ID\t")
	var target int64
	for _, t := range rep.Tables {
		next, status := "", ""
		if t.NextID > 0 {
			next = fmt.Sprint(t.NextID)
		}
		if !rep.DryRun && !t.Match() {
			status = "DIFFERS"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", t.Table, t.Source, t.Target, next, status)
		target += t.Target
	}
	fmt.Fprintf(tw, "total\t%d\t%d\t\t\n", rep.Rows, target)
	if err := tw.Flush(); err != nil {
		return err
	}
	secs := rep.Elapsed.Seconds()
	switch {
	case rep.DryRun:
		_, err := fmt.Fprintf(w, "would copy %d rows in %d tables\n", rep.Rows, len(rep.Tables))
		return err
	case rep.Match():
		_, err := fmt.Fprintf(w, "copied %d rows in %.1fs (%.0f rows/s); every count matches: point DB_URL at the target and start the workers\n",
			rep.Rows, secs, float64(rep.Rows)/max(secs, 0.001))
		return err
	}
	return nil
}
