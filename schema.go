// Package refundhub holds what belongs to the repository as a whole: the
// SQLite schema, which lives at the root (the design card puts schema.sql
// there, where operators and reviewers look for it) and is embedded once
// here for internal/casestore to apply.
package refundhub

import _ "embed"

// Schema is schema.sql: the tables and every numbered migration.
//
//go:embed schema.sql
var Schema string
