package refundflow

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
)

// caseLocks serialises the goroutines of one process on a case.
type caseLocks struct {
	mu sync.Mutex
	m  map[int64]*caseLock
}

type caseLock struct {
	ch   chan struct{}
	refs int
}

func (l *caseLocks) lock(ctx context.Context, id int64) (func(), error) {
	l.mu.Lock()
	cl := l.m[id]
	if cl == nil {
		cl = &caseLock{ch: make(chan struct{}, 1)}
		l.m[id] = cl
	}
	cl.refs++
	l.mu.Unlock()
	release := func() {
		l.mu.Lock()
		cl.refs--
		if cl.refs == 0 {
			delete(l.m, id)
		}
		l.mu.Unlock()
	}
	select {
	case cl.ch <- struct{}{}:
		return func() { <-cl.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}

// hold takes this process's lock on the case, unless open or Wake took it
// already (locked) together with the case's lease, and renews the case's
// lease while held is set. letGo stops renewing, releases a lease still held and
// unlocks. A command waits for the lock as long as it takes; any other input
// no longer than lockCase allows.
func (e *Engine) hold(ctx context.Context, caseID int64, locked func(), held *atomic.Bool, command bool) (letGo func(), err error) {
	unlock := locked
	if unlock == nil {
		if unlock, err = e.lockCase(ctx, caseID, !command); err != nil {
			return nil, err
		}
	}
	held.Store(locked != nil) // open or Wake took the lease with the lock
	stopRenew := e.renew(ctx, caseID, held)
	return func() {
		stopRenew()
		if held.Load() {
			e.releaseLease(ctx, caseID)
		}
		unlock()
	}, nil
}

// errCaseBusy is why an input stopped waiting for this process's lock on
// its case: another input has held it for leaseWait (a slow platform).
var errCaseBusy = errors.New("another input of the case has been handled in this worker process for longer than the lease wait")

// lockCase takes this process's lock on the case. Bounded, it waits for
// it no longer than for another process's lease (leaseWait): then a
// *RetryError wrapping errCaseBusy, and the input is kept in the store for
// its case (process, deferWaiting) or, a wake, tried again at the case's
// next tick. Waiting longer would hold a worker slot for as long as the
// other input's platform calls take, and a slow platform could fill every
// slot with the callbacks of one case and hold up all the others.
//
// A command's wait is not bounded: the consumer hands over one command of
// a case at a time (casework's keyOrder), so a command waits behind a
// callback, a wake or a kept input taken up, never in a crowd; and a
// command kept after a bounded wait could go ahead of one that held the
// lock and is kept after it (a wait for another process's lease).
func (e *Engine) lockCase(ctx context.Context, caseID int64, bounded bool) (func(), error) {
	if !bounded {
		unlock, err := e.locks.lock(ctx, caseID)
		if err != nil {
			return nil, &RetryError{After: time.Second, Err: err}
		}
		return unlock, nil
	}
	lctx, cancel := context.WithTimeout(ctx, e.leaseWait)
	defer cancel()
	unlock, err := e.locks.lock(lctx, caseID)
	switch {
	case err == nil:
		return unlock, nil
	case ctx.Err() != nil:
		return nil, &RetryError{After: time.Second, Err: ctx.Err()}
	}
	return nil, &RetryError{After: leaseRecheck, Err: fmt.Errorf("case %d: %w", caseID, errCaseBusy)}
}

// releaseLease lets go of the case's lease when an input stops before its
// last decision could drop it.
func (e *Engine) releaseLease(ctx context.Context, caseID int64) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := e.store.ReleaseLease(rctx, caseID, e.owner); err != nil {
		e.logger(ctx).WarnContext(ctx, "release lease", "err", err)
	}
}

// leasedElsewhere reports whether another process holds c's lease now.
func (e *Engine) leasedElsewhere(c casestore.Case) bool {
	return c.LeaseOwner != "" && c.LeaseOwner != e.owner && c.LeaseUntil.After(e.now())
}

// renew extends the case's lease every LeaseTTL/3 while held is true.
func (e *Engine) renew(ctx context.Context, caseID int64, held *atomic.Bool) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(e.leaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if !held.Load() {
					continue
				}
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
				if err := e.store.RenewLease(rctx, caseID, e.owner, e.leaseTTL); err != nil {
					e.logger(ctx).ErrorContext(ctx, "renew case lease", "err", err)
				}
				cancel()
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// leaseWait bounds how long one input waits, holding its consumer slot, for
// another process's lease on its case; after it the input is deferred (kept
// in the store) until the lease ends or leaseRecheck has passed, whichever
// comes first (a holder that is alive usually drops it within a step).
const (
	leaseWait    = 5 * time.Second
	leaseRecheck = 5 * time.Second
)

// waitLease waits until the lease ending at until is over; after leaseWait
// in all it returns a RetryError wrapping casestore.ErrLeased for when the
// lease expires.
func (e *Engine) waitLease(ctx context.Context, until time.Time, waited *time.Duration) error {
	left := time.Until(until)
	step := max(min(left, 100*time.Millisecond), 5*time.Millisecond)
	if *waited+step > e.leaseWait {
		return &RetryError{After: max(left, 100*time.Millisecond), Err: casestore.ErrLeased}
	}
	*waited += step
	select {
	case <-ctx.Done():
		return &RetryError{After: time.Second, Err: casestore.ErrLeased}
	case <-time.After(step):
		return nil
	}
}

// deferBusy keeps an input whose case another process holds (waitLease ran
// out) until that lease ends, or leaseRecheck from now if sooner, so the
// input's consumer slot is freed. An input already applied, or one without a
// payload to keep, is handed back with the lease error as before.
func (e *Engine) deferBusy(ctx context.Context, r *run, leaseErr error) (Handled, error) {
	return e.deferWaiting(ctx, r, leaseErr, "leased: another worker process holds the case")
}

// deferWaiting keeps an input that waited long enough (waitErr, a
// *RetryError saying until when) in the store, for reason: see deferBusy.
func (e *Engine) deferWaiting(ctx context.Context, r *run, leaseErr error, reason string) (Handled, error) {
	h := r.h
	var re *RetryError
	if r.applied || !canDefer(r.msg) || ctx.Err() != nil || !errors.As(leaseErr, &re) {
		return h, leaseErr
	}
	until := e.now().Add(min(re.After, leaseRecheck))
	err := e.store.Update(context.WithoutCancel(ctx), func(tx *casestore.Tx) error {
		if err := unappliedCallback(ctx, tx, r); err != nil {
			return err
		}
		return tx.Defer(ctx, deferredInput(r.caseID, r.msg, until, reason))
	})
	if errors.Is(err, casestore.ErrInInbox) {
		return e.appliedMeanwhile(ctx, r)
	}
	if err != nil {
		return h, err
	}
	h.Deferred, h.Until = true, until
	return h, nil
}
