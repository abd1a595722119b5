package refundflow

import "time"

// CaseLockState is what the engine's in-process lock on case id is doing,
// for tests that need an input to be at a known point: held, and how many
// inputs hold or wait for it.
func CaseLockState(e *Engine, id int64) (held bool, inputs int) {
	e.locks.mu.Lock()
	defer e.locks.mu.Unlock()
	cl := e.locks.m[id]
	if cl == nil {
		return false, 0
	}
	return len(cl.ch) == 1, cl.refs
}

// SetLeaseWait sets how long e's inputs wait for another process's lease
// (or the last-chance turn) before they are kept in the store.
func SetLeaseWait(e *Engine, d time.Duration) { e.leaseWait = d }

// SetVerdictDue sets how long e's command reads run ahead may hold the
// commit of the command's verdict (lookaheadForVerdict).
func SetVerdictDue(e *Engine, d time.Duration) { e.verdictDue = d }
