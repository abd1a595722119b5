package casestore

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrLeased: another worker holds the case's lease; try again after it
// ends (or expires).
var ErrLeased = errors.New("casestore: case leased by another worker")

// The SET terms that keep cases.leases_abandoned (migration 24), for a
// statement that gives the lease to an owner (its one argument) and for
// one whose holder lets it go. A lease taken while another owner's is on
// the row (the statements' conditions let it be taken only once expired)
// was left by a holder that ended without letting go: one more in a row.
// A holder that lets go itself ended the case's work normally.
const (
	leaseTakenOver = `leases_abandoned = CASE WHEN lease_owner <> '' AND lease_owner <> ? THEN leases_abandoned + 1 ELSE leases_abandoned END`
	leaseLetGo     = `leases_abandoned = 0`
)

// ClaimLease gives owner the case's lease until now+ttl, in its own BEGIN
// IMMEDIATE transaction. It succeeds when the case is free, already held by
// owner, or held by someone whose lease expired (counted in
// Case.LeasesAbandoned: that holder ended without letting go); otherwise it
// returns ErrLeased and the time the current lease ends.
//
// The lease is what keeps two worker processes on one database from running
// the same case at once: a holder keeps it across its platform calls
// (RenewLease) and releases it when done; a crashed holder's lease expires.
func (s *Store) ClaimLease(ctx context.Context, caseID int64, owner string, ttl time.Duration) (until time.Time, err error) {
	if owner == "" || ttl <= 0 {
		return time.Time{}, errors.New("claim lease: empty owner or non-positive ttl")
	}
	err = s.Update(ctx, func(tx *Tx) error {
		now := ms64(tx.now)
		res, err := tx.tx.ExecContext(ctx, `UPDATE cases SET `+leaseTakenOver+`, lease_owner = ?, lease_until = ?
			WHERE id = ? AND (lease_owner = '' OR lease_owner = ? OR lease_until < ?)`,
			owner, owner, now+ttl.Milliseconds(), caseID, owner, now)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 1 {
			until = time.UnixMilli(now + ttl.Milliseconds()).UTC()
			return nil
		}
		var held int64
		if err := tx.tx.GetContext(ctx, &held, `SELECT lease_until FROM cases WHERE id = ?`, caseID); err != nil {
			return notFound(err)
		}
		until = time.UnixMilli(held).UTC()
		return ErrLeased
	})
	if err != nil {
		return until, fmt.Errorf("claim lease on case %d: %w", caseID, err)
	}
	return until, nil
}

// RenewLease extends owner's lease to now+ttl; ErrLeased if owner no longer
// holds it.
func (s *Store) RenewLease(ctx context.Context, caseID int64, owner string, ttl time.Duration) error {
	err := s.Update(ctx, func(tx *Tx) error {
		res, err := tx.tx.ExecContext(ctx, `UPDATE cases SET lease_until = ? WHERE id = ? AND lease_owner = ?`,
			ms64(tx.now)+ttl.Milliseconds(), caseID, owner)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrLeased
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("renew lease on case %d: %w", caseID, err)
	}
	return nil
}

// ReleaseLease ends owner's lease (no-op if owner does not hold it): the
// holder let go, so the case's count of abandoned leases starts again.
func (s *Store) ReleaseLease(ctx context.Context, caseID int64, owner string) error {
	err := s.Update(ctx, func(tx *Tx) error {
		_, err := tx.tx.ExecContext(ctx, `UPDATE cases SET `+leaseLetGo+`, lease_owner = '', lease_until = 0 WHERE id = ? AND lease_owner = ?`,
			caseID, owner)
		return err
	})
	if err != nil {
		return fmt.Errorf("release lease on case %d: %w", caseID, err)
	}
	return nil
}

// LeasedError is ErrLeased from Tx.UpdateCaseLeased: another process holds
// the case until Until.
type LeasedError struct {
	CaseID int64
	Until  time.Time
}

func (e *LeasedError) Error() string {
	return fmt.Sprintf("update case %d: %v (until %s)", e.CaseID, ErrLeased, e.Until.Format(time.RFC3339Nano))
}

// Unwrap makes a *LeasedError match ErrLeased.
func (e *LeasedError) Unwrap() error { return ErrLeased }

// LeaseUntil returns when the case's current lease ends (zero: free).
func (s *Store) LeaseUntil(ctx context.Context, caseID int64) (owner string, until time.Time, err error) {
	var row struct {
		Owner string `db:"lease_owner"`
		Until int64  `db:"lease_until"`
	}
	if err := s.r.GetContext(ctx, &row, `SELECT lease_owner, lease_until FROM cases WHERE id = ?`, caseID); err != nil {
		return "", time.Time{}, fmt.Errorf("lease of case %d: %w", caseID, notFound(err))
	}
	if row.Owner == "" {
		return "", time.Time{}, nil
	}
	return row.Owner, time.UnixMilli(row.Until).UTC(), nil
}

// LeaseOwners returns the owners that hold a lease on some case (expired or
// not), so that a starting worker can recognise those of dead processes.
func (s *Store) LeaseOwners(ctx context.Context) ([]string, error) {
	var owners []string
	if err := s.r.SelectContext(ctx, &owners, `SELECT DISTINCT lease_owner FROM cases WHERE lease_owner <> ''`); err != nil {
		return nil, fmt.Errorf("lease owners: %w", err)
	}
	return owners, nil
}

// ReleaseLeasesOf ends every lease held by owner, a process known to be
// gone (its open intents are settled by asking the platform, as after any
// crash), counting it on each case (Case.LeasesAbandoned), and returns how
// many cases it held. On PostgreSQL the cases are
// locked in id order, as an order event's transaction locks its order's
// cases: in the order the UPDATE met them in the table, which updates
// rearrange, the two could each wait for the other (deadlock detected).
func (s *Store) ReleaseLeasesOf(ctx context.Context, owner string) (int64, error) {
	var n int64
	err := s.Update(ctx, func(tx *Tx) error {
		res, err := tx.tx.ExecContext(ctx, `UPDATE cases SET leases_abandoned = leases_abandoned + 1, lease_owner = '', lease_until = 0
			WHERE id IN (SELECT id FROM cases WHERE lease_owner = ? ORDER BY id`+tx.forUpdate()+`)`, owner)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("release leases of %s: %w", owner, err)
	}
	return n, nil
}
