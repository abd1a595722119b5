package casework

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/delay"
)

// storeProbeMax caps the wait between two looks at an unreachable store:
// a database back after an hour is found within this, whatever the retry
// backoff's cap.
const storeProbeMax = 10 * time.Second

// storeGate holds the worker's work while the case store does not answer
// or cannot write: a database restarting, recovering from a crash, failing
// over, or cut off by the network; a full disk. Such a failure says
// nothing about the message at hand, so it must not count toward that
// message's deliveries: counted, an outage longer than the retry backoff
// dead-lettered every message in hand, or, with the dead letter unstorable
// too, left them past the consumer's MaxDeliver, never delivered again.
//
// A handler whose work failed with an error casestore.Unavailable
// recognises asks the gate (hold). The gate pings the store (ping, cheap):
// if it answers, the error was something else (a platform call's broken
// connection looks the same) and the handler goes on as with any failure.
// A write the store itself refused (casestore.WriteRefused: a full disk,
// which a ping passes) needs no such look. Otherwise the gate closes: it
// says so once, one probe looks again with backoff, committing a write
// (pingWrite), and every handler that meets the outage waits, its message
// kept in progress, until the probe's write goes through; then each tries
// its work again, in the same delivery. The sweeps skip their ticks while
// it is closed (closed), and /readyz says the database does not answer
// (readiness checks it too).
//
// A gate that closes again soon after it opened (a disk with room for the
// probe but not for every batch) probes from where the last outage's
// backoff ended, so that a store that flaps is tried ever less often, as
// are the held messages' platform calls each retry may make.
//
// Holding ends when the worker starts to stop (stopping): a held message
// has nothing in flight, and going back to JetStream at once beats waiting
// out the shutdown timeout, which a supervisor may not grant.
type storeGate struct {
	ping      func(context.Context) error // does the store answer
	pingWrite func(context.Context) error // does it take a write
	log       *slog.Logger
	base, max time.Duration   // the probe's backoff
	stop      context.Context // done once the worker begins to stop
	waiting   atomic.Int64    // holds waiting for the store now (read by tests)

	// gen counts the outages ended: a refused write from work begun
	// before the gate last opened says nothing of the store now (stale).
	gen atomic.Uint64

	mu     sync.Mutex
	back   chan struct{} // non-nil while closed; closed when the store answers
	since  time.Time
	opened time.Time // when the last outage ended
	step   int       // the backoff step a probe starting now takes, if soon after opened
}

// newStoreGate is a gate on ping and pingWrite, probing first after base
// (at least 10 ms, at most storeProbeMax); it holds nothing once stopping
// is done.
func newStoreGate(ping, pingWrite func(context.Context) error, log *slog.Logger, base time.Duration, stopping context.Context) *storeGate {
	return &storeGate{ping: ping, pingWrite: pingWrite, log: log, base: min(max(base, 10*time.Millisecond), storeProbeMax),
		max: storeProbeMax, stop: stopping}
}

// reopened is what close returns for a stale refusal: closed, the store
// having taken a write since the work began.
var reopened = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// generation is read before work that may meet the store's outage, and
// given to hold or trip with its error.
func (g *storeGate) generation() uint64 { return g.gen.Load() }

// stale reports whether err is a write the store refused to work begun in
// generation seen, before the gate last opened: the store has taken a
// write since, so err does not close the gate again (a slow handler of a
// batch that failed would make everyone wait out another probe).
func (g *storeGate) stale(err error, seen uint64) bool {
	return casestore.WriteRefused(err) && g.gen.Load() != seen
}

// hold is asked after work begun in generation seen failed with err, which
// casestore.Unavailable recognises. It returns true once the store takes
// writes again after an outage, or at once when err is stale: the caller
// reads the generation again and tries its work again. False when the
// store answers now (err was not the store's), or when ctx ends or the
// worker starts to stop first: the caller goes on as after any failure.
func (g *storeGate) hold(ctx context.Context, err error, seen uint64) bool {
	back := g.close(err, seen)
	if back == nil {
		return false
	}
	g.waiting.Add(1)
	defer g.waiting.Add(-1)
	select {
	case <-back:
		return true
	case <-ctx.Done():
		return false
	case <-g.stop.Done():
		return false
	}
}

// trip closes the gate if err, met by work begun in generation seen, is the
// store's and the store does not answer or refused the write (not stale),
// without waiting: a sweep that met the outage stops until the gate opens,
// and the gate opens (its probe runs) even with no message in hand. It
// reports whether the gate is closed.
func (g *storeGate) trip(err error, seen uint64) bool {
	return casestore.Unavailable(err) && !g.stale(err, seen) && g.close(err, seen) != nil
}

// stopping reports whether the worker has begun to stop: hold no longer
// holds.
func (g *storeGate) stopping() bool { return g.stop.Err() != nil }

// lastOpened is when the last outage ended (zero: none yet).
func (g *storeGate) lastOpened() time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.opened
}

// closed reports whether the store is known not to answer now.
func (g *storeGate) closed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.back != nil
}

// close returns the channel closed when the store takes writes again,
// closing the gate if it is open and the store does not answer or refused
// the write itself to work begun in generation seen; nil when the store
// answers now; one closed already when the refusal is stale (the caller
// tries again at once: once per generation, as a retry that fails again is
// not stale).
func (g *storeGate) close(err error, seen uint64) chan struct{} {
	if g.stopping() {
		return nil // stopping: nothing is held, and a ping could not tell
	}
	g.mu.Lock()
	if back := g.back; back != nil {
		g.mu.Unlock()
		return back
	}
	if g.stale(err, seen) {
		g.mu.Unlock()
		return reopened
	}
	g.mu.Unlock()
	var perr error
	if !casestore.WriteRefused(err) {
		pctx, cancel := context.WithTimeout(g.stop, 5*time.Second)
		perr = g.ping(pctx)
		cancel()
		if perr == nil || g.stopping() {
			return nil // the store answers; or stopping cut the ping short
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stale(err, seen) { // the probe went through meanwhile
		return reopened
	}
	if g.back == nil {
		step := 0
		if time.Since(g.opened) < g.max {
			step = g.step // flapping: go on from the last outage's backoff
		}
		g.back, g.since = make(chan struct{}), time.Now()
		attrs := []any{"err", err}
		if perr != nil {
			attrs = append(attrs, "ping", perr)
		}
		g.log.Warn("case store unreachable or not writable: holding messages and sweeps until it takes a write; no delivery is counted meanwhile",
			attrs...)
		go g.probe(g.back, step)
	}
	return g.back
}

// probe tries a write with backoff, from step on, until one goes through,
// then opens the gate.
func (g *storeGate) probe(back chan struct{}, step int) {
	n := step
	for ; ; n++ {
		t := time.NewTimer(delay.Doubling(g.base, g.max, n))
		select {
		case <-g.stop.Done():
			t.Stop()
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(g.stop, 30*time.Second) // a write, on a slow link or disk
		err := g.pingWrite(ctx)
		cancel()
		if err == nil {
			break
		}
	}
	g.mu.Lock()
	g.back = nil
	since := g.since
	g.opened, g.step = time.Now(), n+1
	g.gen.Add(1)
	g.mu.Unlock()
	// Said before the held handlers go on, so that the line comes before
	// anything they log.
	g.log.Info("case store reachable again: resuming", "after", time.Since(since).Round(time.Millisecond))
	close(back)
}
