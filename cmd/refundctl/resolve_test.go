package main

import (
	"strings"
	"testing"

	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// TestResolveAdoptPublishesTheRefundToFollow: --adopt sends the refund's id
// with the resolve; a malformed id, or --adopt with another way out, is a
// usage error naming the flag, and nothing is published.
func TestResolveAdoptPublishesTheRefundToFollow(t *testing.T) {
	e := newEnv(t)
	seedCases(t, e.openStore()) // case 1: taobao 100/101; case 2: 1688 200
	var res commandResult
	decodeJSON(t, e.mustRun("resolve", "1", "--adopt", " 4102938475610293847 ", "--note", "the buyer filed it", "--no-wait", "--json").stdout, &res)
	if c := res.Command; c.Kind != refundflow.InputResolve || c.CaseID != 1 || c.Resolve == nil ||
		c.Resolve.Action != refundflow.ResolveAdopt || c.Resolve.Refund != "4102938475610293847" || c.Resolve.Note != "the buyer filed it" {
		t.Errorf("resolve 1 --adopt: published %+v (resolve %+v); want an adoption of 4102938475610293847 for case 1", c, c.Resolve)
	}
	before := e.streamCount(events.DefaultCommandStreamName)
	e.wantErr(2, `--adopt: "R 9": letters, digits, - and _ only`, "resolve", "1", "--adopt", "R 9")
	e.wantErr(2, "--adopt: required to adopt", "resolve", "1", "--adopt", "")
	e.wantErr(2, `--adopt: "R 9": letters, digits, - and _ only; --note: at most 500 characters`, "resolve", "1", "--adopt", "R 9", "--note", strings.Repeat("n", 501))
	e.wantErr(2, "--note: required to close a case", "resolve", "1", "--close")
	e.wantErr(2, `--adopt: "note: 1": letters`, "resolve", "1", "--adopt", "note: 1")
	e.wantErr(2, "none of the others can be", "resolve", "1", "--adopt", "4102938475610293847", "--retry")
	e.wantErr(2, "at least one of the flags in the group [retry close adopt] is required", "resolve", "1")
	if n := e.streamCount(events.DefaultCommandStreamName); n != before {
		t.Errorf("COMMANDS went from %d to %d messages on bad input; want no change", before, n)
	}
}
