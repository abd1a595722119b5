// Package refundhub holds what belongs to the repository as a whole: the
// case store's schemas, which live at the root (the design card puts
// schema.sql there, where operators and reviewers look for it) and are
// embedded once here for internal/casestore to apply.
package refundhub

import _ "embed"

// Schema is schema.sql: the tables and every numbered migration (SQLite).
//
//go:embed schema.sql
var Schema string

// SchemaPostgres is schema_postgres.sql: the same numbered migrations in
// PostgreSQL's dialect, for a store opened with a postgres:// URL.
//
//go:embed schema_postgres.sql
var SchemaPostgres string
