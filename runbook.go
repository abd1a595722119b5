package refundhub

import _ "embed"

// Runbook is docs/runbook.md, the operator's runbook: what every state and
// attention reason means and what to do. It is embedded so that the
// console shows the runbook's own words (package internal/runbook reads
// them) instead of a copy that drifts.
//
//go:embed docs/runbook.md
var Runbook string
