package casestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/refundhub/refundhub/internal/platform"
)

// Platforms: the values of cases.platform (the schema's CHECK).
const (
	PlatformTaobao = platform.Taobao
	Platform1688   = platform.Alibaba1688
)

// Case is one refund or return case for one Taobao sub-order or one 1688
// order. State and ParkedState hold refundflow states; the JSON documents are
// refundflow's Request, Plan and Shipment, opaque to the store.
type Case struct {
	ID                  int64
	Platform            platform.ID
	OrderID             string
	SubOrderID          string // Taobao sub-order; "" for 1688
	RefundID            string // platform refund id once known
	State               string
	ParkedState         string // the state a needs_attention case stopped at
	Version             int64  // bumped by every UpdateCase
	Request             json.RawMessage
	Plan                json.RawMessage
	Shipment            json.RawMessage
	PlatformStatus      string    // refund status last seen on the platform
	LastPlatformCheckAt time.Time // zero: never checked
	NextWakeAt          time.Time // zero: no timer
	AttentionCode       string
	AttentionMessage    string
	CreatedAt           time.Time
	UpdatedAt           time.Time
	// MovedAt is when the case last moved: opened, or its state, where it
	// stopped, its attention, its refund or the platform's status changed
	// (an update that changes none of them, such as the reconciler's
	// check finding nothing new, a timer or a failed input, leaves it).
	// How long a case has been idle is measured from it; UpdatedAt moves
	// with every write. Set by CreateCase and the updates, not by callers;
	// zero for a case that had finished before migration 26 (not known).
	MovedAt time.Time
	// LeaseOwner and LeaseUntil: the worker process holding the case, if
	// any, and until when (written by ClaimLease and the like and by
	// Tx.UpdateCaseLeased, not by UpdateCase).
	LeaseOwner string
	LeaseUntil time.Time
	// OpenedBy is the id of the command that opened the case, if any.
	OpenedBy string
	// DuplicateOf is, for a 1688 case opened before one open case per order
	// was enforced (migration 8), the id of the order's first open case:
	// read-only, reported so an operator can settle the pair.
	DuplicateOf int64
	// FailedInputs counts the inputs of the case in a row that ended in
	// "retry later" (the retry backoff's exponent); 0 once one gets anywhere.
	FailedInputs int
	// OrderEventsSeen is the last order event (OrderEvent.ID) of the case's
	// order that the case has decided on; later ones are news to it.
	OrderEventsSeen int64
	// OrderEventsLatest is the newest order event of the case's order
	// (read-only: set when a case opens and when an event is kept), so
	// that a case with nothing new reads no events.
	OrderEventsLatest int64
	// MessagesCheckedAt is when the worker last read the refund's messages
	// (zero: never); UnreadSellerMessages counts the seller's messages no
	// operator has read yet. Both read-only here (see RecordCaseMessages).
	MessagesCheckedAt    time.Time
	UnreadSellerMessages int
	// LeasesAbandoned counts, in a row, the worker processes that ended
	// while they held the case's lease (read-only: counted where a lease
	// is taken over from such a holder, set back to 0 where a holder lets
	// go of it; see migration 24).
	LeasesAbandoned int
	// HeldCode and HeldMessage are, for a case held because worker
	// processes kept ending on it, the attention it had before (a parked
	// case's reason, a flag; empty for none), given back when the hold is
	// taken off.
	HeldCode    string
	HeldMessage string
}

// IdleSince is when c last moved (MovedAt): how long it has been idle is
// measured from it. Not known (a case finished before migration 26, or
// read from a console older than this build), its last update is the
// nearest known.
func (c Case) IdleSince() time.Time {
	if c.MovedAt.IsZero() {
		return c.UpdatedAt
	}
	return c.MovedAt
}

// caseRow is the database form of Case.
type caseRow struct {
	ID                  int64         `db:"id"`
	Platform            string        `db:"platform"`
	OrderID             string        `db:"order_id"`
	SubOrderID          string        `db:"sub_order_id"`
	RefundID            string        `db:"refund_id"`
	State               string        `db:"state"`
	ParkedState         string        `db:"parked_state"`
	Version             int64         `db:"version"`
	Request             string        `db:"request"`
	Plan                string        `db:"plan"`
	Shipment            string        `db:"shipment"`
	PlatformStatus      string        `db:"platform_status"`
	LastPlatformCheckAt sql.NullInt64 `db:"last_platform_check_at"`
	NextWakeAt          sql.NullInt64 `db:"next_wake_at"`
	AttentionCode       string        `db:"attention_code"`
	AttentionMessage    string        `db:"attention_message"`
	CreatedAt           int64         `db:"created_at"`
	UpdatedAt           int64         `db:"updated_at"`
	MovedAt             int64         `db:"moved_at"`
	LeaseOwner          string        `db:"lease_owner"`
	LeaseUntil          int64         `db:"lease_until"`
	OpenedBy            string        `db:"opened_by"`
	DuplicateOf         int64         `db:"duplicate_of"`
	FailedInputs        int           `db:"failed_inputs"`
	OrderEventsSeen     int64         `db:"order_events_seen"`
	OrderEventsLatest   int64         `db:"order_events_latest"`
	MessagesCheckedAt   int64         `db:"messages_checked_at"`
	UnreadSeller        int           `db:"unread_seller_messages"`
	LeasesAbandoned     int           `db:"leases_abandoned"`
	HeldCode            string        `db:"held_code"`
	HeldMessage         string        `db:"held_message"`
}

const caseColumns = `id, platform, order_id, sub_order_id, refund_id, state, parked_state, version,
	request, plan, shipment, platform_status, last_platform_check_at, next_wake_at,
	attention_code, attention_message, created_at, updated_at, lease_owner, lease_until, opened_by,
	duplicate_of, failed_inputs, order_events_seen, order_events_latest, messages_checked_at, unread_seller_messages,
	leases_abandoned, held_code, held_message, moved_at`

func (r caseRow) toCase() Case {
	c := Case{
		ID: r.ID, Platform: platform.ID(r.Platform), OrderID: r.OrderID, SubOrderID: r.SubOrderID,
		RefundID: r.RefundID, State: r.State, ParkedState: r.ParkedState, Version: r.Version,
		Request: json.RawMessage(r.Request), Plan: json.RawMessage(r.Plan), Shipment: json.RawMessage(r.Shipment),
		PlatformStatus: r.PlatformStatus, LastPlatformCheckAt: fromMS(r.LastPlatformCheckAt),
		NextWakeAt: fromMS(r.NextWakeAt), AttentionCode: r.AttentionCode, AttentionMessage: r.AttentionMessage,
		CreatedAt: time.UnixMilli(r.CreatedAt).UTC(), UpdatedAt: time.UnixMilli(r.UpdatedAt).UTC(),
		LeaseOwner: r.LeaseOwner, OpenedBy: r.OpenedBy, DuplicateOf: r.DuplicateOf, FailedInputs: r.FailedInputs,
		OrderEventsSeen: r.OrderEventsSeen, OrderEventsLatest: r.OrderEventsLatest, UnreadSellerMessages: r.UnreadSeller,
		LeasesAbandoned: r.LeasesAbandoned, HeldCode: r.HeldCode, HeldMessage: r.HeldMessage,
	}
	if r.MessagesCheckedAt > 0 {
		c.MessagesCheckedAt = time.UnixMilli(r.MessagesCheckedAt).UTC()
	}
	if r.MovedAt > 0 { // 0: a case finished before migration 26, not known
		c.MovedAt = time.UnixMilli(r.MovedAt).UTC()
	}
	if r.LeaseUntil > 0 {
		c.LeaseUntil = time.UnixMilli(r.LeaseUntil).UTC()
	}
	return c
}

// jsonText returns the document as text, "{}" when empty; it rejects invalid JSON.
func jsonText(field string, doc json.RawMessage) (string, error) {
	if len(doc) == 0 {
		return "{}", nil
	}
	if !json.Valid(doc) {
		return "", fmt.Errorf("case %s: not valid JSON", field)
	}
	return string(doc), nil
}

// NewCase is what CreateCase needs to open a case.
type NewCase struct {
	Platform   platform.ID
	OrderID    string
	SubOrderID string
	State      string // the initial state, e.g. refundflow.StateRequested
	Request    json.RawMessage
	NextWakeAt time.Time
	// OpenedBy is the id of the command that opened the case ("" if none);
	// unique, so a redelivered command cannot open a second case.
	OpenedBy string
	// LeaseOwner, when set, holds the new case's lease for LeaseTTL from
	// the start (as Tx.UpdateCaseLeased would, without a second statement).
	LeaseOwner string
	LeaseTTL   time.Duration
}

// CreateCase opens a case. It returns ErrOpenCaseExists when the order (or
// sub-order) already has a case that is not finished.
func (tx *Tx) CreateCase(ctx context.Context, n NewCase) (Case, error) {
	req, err := jsonText("request", n.Request)
	if err != nil {
		return Case{}, err
	}
	if n.State == "" {
		return Case{}, fmt.Errorf("create case: empty state")
	}
	if n.Platform == Platform1688 && n.SubOrderID != "" {
		// One case per 1688 order (migration 8): a sub-order id would only
		// make a second key for the same case.
		return Case{}, fmt.Errorf("create case: 1688 order %s: a 1688 case has no sub-order (got %q)", n.OrderID, n.SubOrderID)
	}
	now := ms64(tx.now)
	var leaseUntil int64
	if n.LeaseOwner != "" {
		if n.LeaseTTL <= 0 {
			return Case{}, fmt.Errorf("create case: lease owner without a positive lease ttl")
		}
		leaseUntil = now + n.LeaseTTL.Milliseconds()
	}
	if err := tx.lockOrder(ctx, string(n.Platform), n.OrderID); err != nil {
		return Case{}, fmt.Errorf("create case: %w", err)
	}
	// The order's events kept so far are news to the new case.
	// Any unique index refusing the row (an open case of the order, the
	// opening command's) skips it: ON CONFLICT rather than a failed
	// statement, which would end a PostgreSQL transaction.
	id, latest, inserted, err := tx.insertCase(ctx, string(n.Platform), n.OrderID, n.SubOrderID, n.State, req,
		nullMS(n.NextWakeAt), now, now, now, n.OpenedBy, n.LeaseOwner, leaseUntil)
	switch {
	case err != nil && isUnique(err), err == nil && !inserted:
		return Case{}, fmt.Errorf("create case %s %s/%s: %w", n.Platform, n.OrderID, n.SubOrderID, ErrOpenCaseExists)
	case err != nil:
		return Case{}, fmt.Errorf("create case %s %s/%s: %w", n.Platform, n.OrderID, n.SubOrderID, err)
	}
	// Built here, not read back (see updateCase): the column defaults of
	// schema.sql, at version 1.
	c := Case{ID: id, Platform: n.Platform, OrderID: n.OrderID, SubOrderID: n.SubOrderID, State: n.State,
		Request: json.RawMessage(req), NextWakeAt: n.NextWakeAt, CreatedAt: time.UnixMilli(now).UTC(), MovedAt: time.UnixMilli(now).UTC(), OpenedBy: n.OpenedBy,
		LeaseOwner: n.LeaseOwner, OrderEventsLatest: latest}
	if leaseUntil > 0 {
		c.LeaseUntil = time.UnixMilli(leaseUntil).UTC()
	}
	return storedCase(c, now), nil
}

// caseInsert inserts a case; its last value, the order's newest event, is
// read by the statement itself.
const caseInsert = `INSERT INTO cases
		(platform, order_id, sub_order_id, state, request, next_wake_at, created_at, updated_at, moved_at, opened_by, lease_owner, lease_until,
		 order_events_latest)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, (SELECT COALESCE(MAX(id), 0) FROM order_events WHERE platform = ? AND order_id = ?))
		ON CONFLICT DO NOTHING`

// caseInsertSQLite is caseInsert taking the latest event, read just
// before, as a value: the single writer need not work it out twice.
var caseInsertSQLite = strings.Replace(caseInsert,
	`(SELECT COALESCE(MAX(id), 0) FROM order_events WHERE platform = ? AND order_id = ?)`, `?`, 1)

// insertCase runs caseInsert with vals (its values up to lease_until) and
// returns the new case's id and order_events_latest, or inserted == false
// when a unique index skipped it. PostgreSQL reads both back with
// RETURNING, in one round trip with what the transaction queued before;
// SQLite, where RETURNING costs several times the insert, reads the latest
// event first and takes LastInsertId.
func (tx *Tx) insertCase(ctx context.Context, vals ...any) (id, latest int64, inserted bool, err error) {
	plat, orderID := vals[0], vals[1]
	args := append(vals, plat, orderID)
	if tx.tx.pg {
		r, err := getOne[struct {
			ID       int64 `db:"id"`
			Latest   int64 `db:"order_events_latest"`
			Previous int64 `db:"previous"`
		}](ctx, tx, caseInsert+` RETURNING id, order_events_latest, (SELECT COALESCE(MAX(p.id), 0) FROM cases p
			WHERE p.platform = cases.platform AND p.order_id = cases.order_id AND p.sub_order_id = cases.sub_order_id
			AND p.id < cases.id) AS previous`, args...)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, 0, false, nil
		}
		if err == nil {
			tx.previous(r.ID, r.Previous)
		}
		return r.ID, r.Latest, err == nil, err
	}
	if err := sqlx.GetContext(ctx, tx.tx, &latest, `SELECT COALESCE(MAX(id), 0) FROM order_events WHERE platform = ? AND order_id = ?`,
		plat, orderID); err != nil {
		return 0, 0, false, fmt.Errorf("order events: %w", err)
	}
	id, inserted, err = tx.insert(ctx, caseInsertSQLite, append(vals, latest)...)
	return id, latest, inserted, err
}

// UpdateCase writes all of c's mutable fields (refund id, state, parked
// state, documents, platform status and check time, wake time, attention) if
// the stored version is still c.Version, and returns the case as stored, with
// its new version and update time (its other fields as c has them: the ids,
// creation time, lease and opener are not written). A concurrent change yields
// ErrVersionConflict and writes nothing. When the case as read is at hand,
// UpdateCaseFrom writes less.
func (tx *Tx) UpdateCase(ctx context.Context, c Case) (Case, error) {
	// Whether the write moves the case (MovedAt) is told against the row
	// as stored: one read more, UpdateCase being the tools' and tests'
	// way (the worker writes with the case as read in hand).
	c.MovedAt = time.UnixMilli(ms64(tx.now)).UTC()
	if stored, err := tx.GetCase(ctx, c.ID); err == nil && stored.Version == c.Version && !moved(&stored, &c) {
		c.MovedAt = stored.MovedAt
	}
	return tx.updateCase(ctx, nil, c, nil)
}

// UpdateCaseFrom is UpdateCase writing only the fields in which next differs
// from prev, the case as read at prev.Version (next.Version is ignored). Every
// write of these fields bumps the version, so while the stored version is
// prev.Version the row still holds prev's values and the result is the same
// as UpdateCase(next) at that version; but SQLite then maintains only the
// indexes over the columns that changed, which is most of an update's cost.
//
// prev must come from a read (GetCase and the like) or from CreateCase or an
// update in the same, still uncommitted Update call. A case returned inside
// an Update whose changes were rolled back carries a version that a later,
// different write may reuse: it must not be used as prev.
func (tx *Tx) UpdateCaseFrom(ctx context.Context, prev, next Case) (Case, error) {
	if prev.ID != next.ID {
		return Case{}, fmt.Errorf("update case %d: from case %d", next.ID, prev.ID)
	}
	next.Version = prev.Version
	return tx.updateCase(ctx, &prev, next, nil)
}

// UpdateCaseLeased is UpdateCaseFrom for the worker process owner, in one
// statement with what the decision does to owner's lease on the case: keep
// > 0 leaves the case leased to owner until now+keep (taken, or extended);
// keep == 0 ends owner's lease. So a decision is committed only by the
// process that holds the case (or may take it), and the case row gets one
// new version per decision, where taking the lease, the update and dropping
// the lease made three: on PostgreSQL each is a row version written,
// indexed and vacuumed, and the lease's UPDATE was the costliest statement
// a decision ran.
//
// While another process holds an unexpired lease, nothing is written and
// the error is a *LeasedError saying when that lease ends. It wins over a
// version conflict: the holder is usually why the version moved, and the
// caller must wait for it, not only read again. The result carries the
// lease as stored.
func (tx *Tx) UpdateCaseLeased(ctx context.Context, prev, next Case, owner string, keep time.Duration) (Case, error) {
	if prev.ID != next.ID {
		return Case{}, fmt.Errorf("update case %d: from case %d", next.ID, prev.ID)
	}
	if owner == "" || keep < 0 || (keep > 0 && keep < time.Millisecond) {
		// Under a millisecond (the lease's resolution) a lease would be
		// stored expired.
		return Case{}, fmt.Errorf("update case %d: empty lease owner, or a lease time neither 0 nor at least 1ms", next.ID)
	}
	lw := leaseWrite{owner: owner}
	if keep > 0 {
		lw.until = ms64(tx.now) + keep.Milliseconds()
	}
	next.Version = prev.Version
	return tx.updateCase(ctx, &prev, next, &lw)
}

// leaseWrite is what UpdateCaseLeased writes to the case's lease: owner's
// until then (ms), or no lease (until 0).
type leaseWrite struct {
	owner string
	until int64
}

// caseField is one mutable column of cases and its value in a Case.
type caseField struct {
	col string
	doc bool // a JSON document: validated before it is written
	val func(c *Case) any
}

// caseFields are the columns UpdateCase writes, in a fixed order so that the
// statement texts (and the driver's prepared statements) are few.
var caseFields = []caseField{
	{col: "refund_id", val: func(c *Case) any { return c.RefundID }},
	{col: "state", val: func(c *Case) any { return c.State }},
	{col: "parked_state", val: func(c *Case) any { return c.ParkedState }},
	{col: "request", doc: true, val: func(c *Case) any { return docText(c.Request) }},
	{col: "plan", doc: true, val: func(c *Case) any { return docText(c.Plan) }},
	{col: "shipment", doc: true, val: func(c *Case) any { return docText(c.Shipment) }},
	{col: "platform_status", val: func(c *Case) any { return c.PlatformStatus }},
	{col: "last_platform_check_at", val: func(c *Case) any { return nullMS(c.LastPlatformCheckAt) }},
	{col: "next_wake_at", val: func(c *Case) any { return nullMS(c.NextWakeAt) }},
	{col: "attention_code", val: func(c *Case) any { return c.AttentionCode }},
	{col: "attention_message", val: func(c *Case) any { return c.AttentionMessage }},
	{col: "failed_inputs", val: func(c *Case) any { return c.FailedInputs }},
	{col: "order_events_seen", val: func(c *Case) any { return c.OrderEventsSeen }},
	{col: "held_code", val: func(c *Case) any { return c.HeldCode }},
	{col: "held_message", val: func(c *Case) any { return c.HeldMessage }},
	{col: "moved_at", val: func(c *Case) any { return msOrZero(c.MovedAt) }},
}

// moved reports whether next, written over prev, moves the case (MovedAt):
// its state, where it stopped, its attention, its refund or the
// platform's status differ.
func moved(prev, next *Case) bool {
	return prev.State != next.State || prev.ParkedState != next.ParkedState || prev.AttentionCode != next.AttentionCode ||
		prev.RefundID != next.RefundID || prev.PlatformStatus != next.PlatformStatus
}

// docText is a document as stored: its text, {} when empty.
func docText(d json.RawMessage) string {
	if len(d) == 0 {
		return "{}"
	}
	return string(d)
}

// updateCase writes next's mutable fields (only those differing from prev
// when prev is known) at version next.Version. The result is built here, not
// read back: RETURNING costs SQLite several times the update itself (it runs
// as a trigger filling a temporary table), and the committer's time is the
// worker's bottleneck. With lw (UpdateCaseLeased) the statement writes the
// lease too, on condition that no other process holds the case, and the
// result carries it. Without, the lease fields of the result are prev's (or
// next's when prev is nil) as given, not necessarily the stored ones: a
// lease changes without a new version (ClaimLease, another process's
// claim). Store.LeaseUntil reads the lease.
func (tx *Tx) updateCase(ctx context.Context, prev *Case, next Case, lw *leaseWrite) (Case, error) {
	cw := caseWrite{id: next.ID, version: next.Version, bumps: 1, now: ms64(tx.now), lease: lw,
		vals: make([]any, len(caseFields))}
	switch {
	case prev == nil: // UpdateCase: told against the stored row there
	case moved(prev, &next):
		next.MovedAt = time.UnixMilli(cw.now).UTC()
	default:
		next.MovedAt = prev.MovedAt // (a caller's value is not written)
	}
	for i, f := range caseFields {
		v := f.val(&next)
		if prev != nil && f.val(prev) == v {
			continue
		}
		if f.doc && !json.Valid([]byte(v.(string))) {
			return Case{}, fmt.Errorf("case %s: not valid JSON", f.col)
		}
		cw.vals[i] = v
	}
	if p := tx.tx.pipe; p == nil || !p.mergeCaseWrite(cw) {
		query, args := cw.statement()
		done, why := cw.checks()
		if err := tx.queue(ctx, query, args, true, done, why, &cw); err != nil {
			return Case{}, err
		}
	}
	now := cw.now
	if prev != nil {
		next.Platform, next.OrderID, next.SubOrderID, next.CreatedAt = prev.Platform, prev.OrderID, prev.SubOrderID, prev.CreatedAt
		next.LeaseOwner, next.LeaseUntil, next.OpenedBy, next.DuplicateOf = prev.LeaseOwner, prev.LeaseUntil, prev.OpenedBy, prev.DuplicateOf
		next.LeasesAbandoned = prev.LeasesAbandoned
	}
	if lw != nil {
		next.LeaseOwner, next.LeaseUntil = lw.storedOwner(), time.Time{}
		if lw.until > 0 {
			next.LeaseUntil = time.UnixMilli(lw.until).UTC()
			if prev != nil && prev.LeaseOwner != "" && prev.LeaseOwner != lw.owner {
				// Taken over, as far as prev knows: a lease moves
				// without a new version, so only the statement knows
				// (the engine reads the count, never this).
				next.LeasesAbandoned++
			}
		} else {
			next.LeasesAbandoned = 0
		}
	}
	return storedCase(next, now), nil
}

// storedOwner is the lease_owner lw writes: none when the lease ends.
func (lw *leaseWrite) storedOwner() string {
	if lw.until == 0 {
		return ""
	}
	return lw.owner
}

// heldElsewhere reports whether the case as stored is leased, at now (ms),
// to a process other than lw's: the condition UpdateCaseLeased's statement
// refuses on.
func (lw *leaseWrite) heldElsewhere(c Case, now int64) bool {
	return c.LeaseOwner != "" && c.LeaseOwner != lw.owner && c.LeaseUntil.UnixMilli() >= now
}

// caseWrite is one UPDATE of a case: the columns it sets (vals, by
// caseFields' order; nil: not written), the version it expects stored and
// how many versions it moves the case on (bumps), and the lease it writes
// and requires (lease, nil for neither). A transaction that decides a case
// twice (refundflow's lookahead: a decision and the one its step's result
// leads to) writes it twice; on PostgreSQL, while the first UPDATE still
// waits in the transaction's queue, the second is folded into it
// (pgPipe.mergeCaseWrite): one row version instead of two, and on a case
// table whose every update is indexed anew, one set of index entries
// instead of two. The folded write leaves the row as the pair would: the
// first's checks decide it (after the first, the row is this transaction's,
// and the second's version and lease checks hold, so a second write that
// checks a lease folds only into one that checked the same owner's), the
// second's values win, and the version moves on by both. Two differences,
// neither reachable from the engine: a unique index the first write's
// values alone would break (an open case made and closed again in one
// transaction) no longer fails the transaction, and a failure of the
// folded write is reported before one of a check queued between the two.
type caseWrite struct {
	id, version int64
	bumps       int64
	now         int64 // updated_at, ms
	vals        []any
	lease       *leaseWrite
}

// statement is cw's UPDATE and its arguments.
func (cw *caseWrite) statement() (string, []any) {
	var set strings.Builder
	args := make([]any, 0, len(caseFields)+8)
	for i, f := range caseFields {
		if cw.vals[i] == nil {
			continue
		}
		set.WriteString(f.col)
		set.WriteString(" = ?, ")
		args = append(args, cw.vals[i])
	}
	where := "WHERE id = ? AND version = ?"
	if cw.lease != nil {
		// Before lease_owner in SET: every expression reads the row as it
		// was before the statement.
		if cw.lease.until == 0 {
			set.WriteString(leaseLetGo + ", ")
		} else {
			set.WriteString(leaseTakenOver + ", ")
			args = append(args, cw.lease.owner)
		}
		set.WriteString("lease_owner = ?, lease_until = ?, ")
		args = append(args, cw.lease.storedOwner(), cw.lease.until)
	}
	args = append(args, cw.now, cw.bumps, cw.id, cw.version)
	if cw.lease != nil {
		where += " AND (lease_owner = '' OR lease_owner = ? OR lease_until < ?)"
		args = append(args, cw.lease.owner, cw.now)
	}
	return `UPDATE cases SET ` + set.String() + `updated_at = ?, version = version + ?
		` + where, args
}

// checks are cw's outcome (done) and, when it changed no row, the reason
// read back (why): another process's lease, else a version conflict.
func (cw *caseWrite) checks() (done func(int64, error) error, why func(context.Context, sqlx.QueryerContext) error) {
	id, version, lw, now := cw.id, cw.version, cw.lease, cw.now
	done = func(n int64, err error) error {
		switch {
		case err != nil && isUnique(err):
			return fmt.Errorf("update case %d: %w", id, ErrOpenCaseExists)
		case err != nil:
			return fmt.Errorf("update case %d: %w", id, err)
		case n == 0:
			return errRecheck
		}
		return nil
	}
	why = func(ctx context.Context, q sqlx.QueryerContext) error {
		stored, err := getCase(ctx, q, id)
		if err != nil {
			return fmt.Errorf("update case %d: %w", id, err)
		}
		if lw != nil && lw.heldElsewhere(stored, now) {
			return &LeasedError{CaseID: id, Until: stored.LeaseUntil}
		}
		return fmt.Errorf("update case %d at version %d: %w", id, version, ErrVersionConflict)
	}
	return done, why
}

// then is the write that does cw and after it next, the write of the
// version cw leaves, in one statement; ok is false when they cannot fold:
// another case, another version, or a next that checks a lease cw did not
// check for the same owner (folded, its check would move ahead of cw's
// write and could fail where cw alone would not).
func (cw caseWrite) then(next caseWrite) (caseWrite, bool) {
	if next.id != cw.id || next.version != cw.version+cw.bumps || next.now != cw.now ||
		(next.lease != nil && (cw.lease == nil || cw.lease.owner != next.lease.owner)) {
		return caseWrite{}, false
	}
	vals := slices.Clone(cw.vals)
	for i, v := range next.vals {
		if v != nil {
			vals[i] = v
		}
	}
	cw.vals, cw.bumps = vals, cw.bumps+next.bumps
	if next.lease != nil {
		cw.lease = next.lease
	}
	return cw, true
}

// storedCase returns c as the database holds it after an update at now:
// times at millisecond precision in UTC, empty documents as {}, the next
// version.
func storedCase(c Case, now int64) Case {
	c.Request, c.Plan, c.Shipment = json.RawMessage(docText(c.Request)), json.RawMessage(docText(c.Plan)), json.RawMessage(docText(c.Shipment))
	c.LastPlatformCheckAt, c.NextWakeAt = fromMS(nullMS(c.LastPlatformCheckAt)), fromMS(nullMS(c.NextWakeAt))
	c.UpdatedAt = time.UnixMilli(now).UTC()
	c.Version++
	return c
}

func getCase(ctx context.Context, q sqlx.QueryerContext, id int64) (Case, error) {
	var r caseRow
	if err := sqlx.GetContext(ctx, q, &r, `SELECT `+caseColumns+` FROM cases WHERE id = ?`, id); err != nil {
		return Case{}, fmt.Errorf("get case %d: %w", id, notFound(err))
	}
	return r.toCase(), nil
}

func caseByRefundID(ctx context.Context, q sqlx.QueryerContext, plat platform.ID, refundID string) (Case, error) {
	var r caseRow
	err := sqlx.GetContext(ctx, q, &r, caseByRefundQuery(), string(plat), refundID)
	if err != nil {
		return Case{}, fmt.Errorf("case for refund %s %s: %w", string(plat), refundID, notFound(err))
	}
	return r.toCase(), nil
}

// caseByRefundQuery selects the case of a platform's refund (arguments:
// platform, refund id), for every look-up by refund, so that they agree. If
// a refund id was recorded twice (a case adopted the refund an earlier one
// left open when it was closed locally), the case that follows it wins,
// and of those the newest.
func caseByRefundQuery() string {
	return `SELECT ` + caseColumns + ` FROM cases WHERE platform = ? AND refund_id = ? AND refund_id <> ''
		ORDER BY CASE WHEN ` + terminalFilter() + ` THEN 0 ELSE 1 END, id DESC LIMIT 1`
}

// terminalFilter is the SQL condition "the case is not finished", written as
// the open-case partial indexes of schema.sql have it (so queries can use
// them): a chain of <>, as an IN list costs a temporary b-tree.
func terminalFilter() string {
	return "state <> '" + strings.Join(terminalStates, "' AND state <> '") + "'"
}

// openCase is the unfinished case a platform key names: a Taobao case is one
// per sub-order, whatever order id came with it (migration 4); a 1688 case
// one per order, whatever sub-order id came with it (migration 8: cases
// opened before it may carry one). Of an order's marked duplicates the first
// case (DuplicateOf 0) wins.
func openCase(ctx context.Context, q sqlx.QueryerContext, plat platform.ID, orderID, subOrderID string) (Case, error) {
	var r caseRow
	query, args := openCaseQuery(plat, orderID, subOrderID)
	err := sqlx.GetContext(ctx, q, &r, query, args...)
	if err != nil {
		return Case{}, fmt.Errorf("open case for %s %s/%s: %w", string(plat), orderID, subOrderID, notFound(err))
	}
	return r.toCase(), nil
}

// openCaseQuery is the query of openCase and its arguments.
func openCaseQuery(plat platform.ID, orderID, subOrderID string) (string, []any) {
	if plat == Platform1688 {
		return `SELECT ` + caseColumns + ` FROM cases
			WHERE platform = ? AND order_id = ? AND ` + terminalFilter() + ` ORDER BY duplicate_of, id LIMIT 1`, []any{string(plat), orderID}
	}
	return `SELECT ` + caseColumns + ` FROM cases
			WHERE platform = ? AND sub_order_id = ? AND sub_order_id <> '' AND ` + terminalFilter() + `
			ORDER BY id DESC LIMIT 1`, []any{string(plat), subOrderID}
}

// RequestCases returns, in one read, the two cases a request_refund
// command may be for: the unfinished case of its platform key (OpenCase)
// and the case the command itself opened (CaseOpenedBy, which may have
// finished since); nil for either that does not exist. On PostgreSQL each
// read is a round trip, and every new request asks both.
func (s *Store) RequestCases(ctx context.Context, plat platform.ID, orderID, subOrderID, commandID string) (open, openedBy *Case, err error) {
	q, args := openCaseQuery(plat, orderID, subOrderID)
	var rows []struct {
		Which string `db:"which"`
		caseRow
	}
	err = sqlx.SelectContext(ctx, s.r, &rows, `SELECT 'open' AS which, o.* FROM (`+q+`) o
		UNION ALL SELECT 'by' AS which, `+caseColumns+` FROM cases WHERE opened_by = ? AND opened_by <> ''`,
		append(args, commandID)...)
	if err != nil {
		return nil, nil, fmt.Errorf("cases of request %q for %s %s/%s: %w", commandID, plat, orderID, subOrderID, err)
	}
	for _, r := range rows {
		c := r.toCase()
		if r.Which == "open" {
			open = &c
		} else {
			openedBy = &c
		}
	}
	return open, openedBy, nil
}

// OpenCase returns the unfinished case a platform key names (a Taobao
// sub-order, a 1688 order), or ErrNotFound.
func (s *Store) OpenCase(ctx context.Context, plat platform.ID, orderID, subOrderID string) (Case, error) {
	return openCase(ctx, s.r, plat, orderID, subOrderID)
}

// OpenCase is Store.OpenCase inside the transaction.
func (tx *Tx) OpenCase(ctx context.Context, plat platform.ID, orderID, subOrderID string) (Case, error) {
	return openCase(ctx, tx.tx, plat, orderID, subOrderID)
}

// DuplicateOpenCases returns the open 1688 cases marked as a second case of
// their order (migration 8), for reporting.
func (s *Store) DuplicateOpenCases(ctx context.Context) ([]Case, error) {
	return selectCases(ctx, s.r, "duplicate open cases", `SELECT `+caseColumns+` FROM cases
		WHERE duplicate_of <> 0 AND `+terminalFilter()+` ORDER BY id`)
}

// GetCase returns the case with the given id, read inside the transaction.
func (tx *Tx) GetCase(ctx context.Context, id int64) (Case, error) {
	r, err := getOne[caseRow](ctx, tx, `SELECT `+caseColumns+` FROM cases WHERE id = ?`, id)
	if err != nil {
		return Case{}, fmt.Errorf("get case %d: %w", id, notFound(err))
	}
	return r.toCase(), nil
}

// CaseByRefundID returns the case that recorded the platform refund id.
func (tx *Tx) CaseByRefundID(ctx context.Context, plat platform.ID, refundID string) (Case, error) {
	return caseByRefundID(ctx, tx.tx, plat, refundID)
}

// OpenCaseFollowing returns the id of an unfinished case other than except
// that recorded the platform refund id, 0 when there is none: a case about
// to take a refund as its own checks, in its commit, that no other case
// follows it. On PostgreSQL it first takes a transaction lock on the
// refund, so that two such commits check one after the other (each sees
// the other's case only once committed); SQLite's write lock does this
// already.
func (tx *Tx) OpenCaseFollowing(ctx context.Context, plat platform.ID, refundID string, except int64) (int64, error) {
	if tx.tx.pg {
		if err := tx.later(ctx, fmt.Sprintf("lock refund %s %s", plat, refundID),
			`SELECT pg_advisory_xact_lock(hashtextextended('refund/' || ?::text || '/' || ?::text, 0))`, string(plat), refundID); err != nil {
			return 0, err
		}
	}
	var id int64
	err := tx.tx.GetContext(ctx, &id, `SELECT id FROM cases WHERE platform = ? AND refund_id = ? AND refund_id <> '' AND id <> ? AND `+
		terminalFilter()+` ORDER BY id LIMIT 1`, string(plat), refundID, except)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("open case following refund %s %s: %w", string(plat), refundID, err)
	}
	return id, nil
}

// GetCase returns the case with the given id, or ErrNotFound.
func (s *Store) GetCase(ctx context.Context, id int64) (Case, error) { return getCase(ctx, s.r, id) }

// CaseByRefundID returns the case that recorded the platform refund id, or ErrNotFound.
func (s *Store) CaseByRefundID(ctx context.Context, plat platform.ID, refundID string) (Case, error) {
	return caseByRefundID(ctx, s.r, plat, refundID)
}

// RefundOwners returns, for each given refund id, the id of the case that
// recorded it (ids no case recorded are absent).
func (s *Store) RefundOwners(ctx context.Context, plat platform.ID, refundIDs []string) (map[string]int64, error) {
	out := make(map[string]int64, len(refundIDs))
	for _, id := range refundIDs {
		if id == "" {
			continue
		}
		c, err := caseByRefundID(ctx, s.r, plat, id)
		switch {
		case err == nil:
			out[id] = c.ID
		case errors.Is(err, ErrNotFound):
		default:
			return nil, err
		}
	}
	return out, nil
}

// LatestCase returns the newest case, finished or not, of a 1688 order
// (subOrderID "") or of a Taobao sub-order (orderID ignored), or ErrNotFound.
// A command for a case that just finished finds it here and is refused as
// such rather than treated as naming an unknown case.
func (s *Store) LatestCase(ctx context.Context, plat platform.ID, orderID, subOrderID string) (Case, error) {
	var r caseRow
	var err error
	if subOrderID != "" {
		err = s.r.GetContext(ctx, &r, `SELECT `+caseColumns+` FROM cases WHERE platform = ? AND sub_order_id = ?
			ORDER BY id DESC LIMIT 1`, string(plat), subOrderID)
	} else {
		err = s.r.GetContext(ctx, &r, `SELECT `+caseColumns+` FROM cases WHERE platform = ? AND order_id = ?
			ORDER BY id DESC LIMIT 1`, string(plat), orderID)
	}
	if err != nil {
		return Case{}, fmt.Errorf("latest case for %s %s/%s: %w", string(plat), orderID, subOrderID, notFound(err))
	}
	return r.toCase(), nil
}

// CaseOpenedBy returns the case the given command opened, or ErrNotFound.
func (s *Store) CaseOpenedBy(ctx context.Context, commandID string) (Case, error) {
	var r caseRow
	err := s.r.GetContext(ctx, &r, `SELECT `+caseColumns+` FROM cases WHERE opened_by = ? AND opened_by <> ''`, commandID)
	if err != nil {
		return Case{}, fmt.Errorf("case opened by %q: %w", commandID, notFound(err))
	}
	return r.toCase(), nil
}
