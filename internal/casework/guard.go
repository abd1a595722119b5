package casework

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/refundhub/refundhub/internal/excerpt"
)

// guard runs fn, the engine's work on one input (where: message, deferred
// or wake), and turns a panic in it into an error: a bug of this build met
// by one input. Uncaught, it would end the process, and with it every
// input in flight (each redelivered, a delivery counted), and again at
// each redelivery of the same input until the consumer gave up on it,
// with no record of why: one bad input would stop every case. Caught, the
// input alone fails, said once in the log with its stack, and counted in
// refundhub_worker_panics_total. What fn left half done is what a crash
// leaves: an intent recorded before a platform call is settled from the
// platform at the case's next wake (the engine's deferred letGo releases
// the case's lease and lock on the way out).
//
// A panic in a goroutine fn started is not caught (it ends the process as
// before), nor one in SQLite's group committer, which turns it into its
// update's error instead (casestore.ErrUpdatePanicked).
func (w *Worker) guard(ctx context.Context, where string, fn func()) (err error) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		w.metrics.panics.WithLabelValues(where).Inc()
		err = fmt.Errorf("the worker failed on it (a bug of this build): panic: %s", excerpt.Of(fmt.Sprint(v), 300))
		w.log.ErrorContext(ctx, "the worker failed on an input", "where", where, "err", err, "stack", string(debug.Stack()))
	}()
	fn()
	return nil
}

// brokenWake is how long a case whose wake panicked is not woken again by
// the timer or reconcile sweeps (each wake would meet the same bug).
func (w *Worker) brokenWake() time.Duration { return w.cfg.RetryMax }
