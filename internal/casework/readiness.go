package casework

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/nats-io/nats.go"

	"github.com/refundhub/refundhub/internal/casestore"
)

// Why a process is not ready (see readiness.check).
var (
	errNotConsuming = errors.New("not consuming: starting, waiting for NATS, or stopping")
	errNATSDown     = errors.New("nats not connected")
	errStoreHeld    = errors.New("holding work: the case store does not answer (or takes no writes)")
)

// readiness is what GET /readyz answers: whether this process takes work
// now, so that a supervisor counts it in only then. Alive (/healthz) is not
// enough: a worker waits for NATS at start and stops taking messages long
// before it exits.
type readiness struct {
	// consuming is set once Run's consumers and sweeps run, and cleared as
	// soon as it starts to shut down.
	consuming atomic.Bool
	conn      *nats.Conn
	store     *casestore.Store
	gate      *storeGate // closed: the store's reads may answer (a standby) while no write can
}

// check returns nil when the process is ready: consuming, connected to
// NATS, and with a database that answers. Otherwise it says which of these
// is missing.
func (r *readiness) check(ctx context.Context) error {
	if !r.consuming.Load() {
		return errNotConsuming
	}
	if !r.conn.IsConnected() {
		return errNATSDown
	}
	if r.gate != nil && r.gate.closed() {
		return errStoreHeld
	}
	if _, err := r.store.SchemaVersion(ctx); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	return nil
}
