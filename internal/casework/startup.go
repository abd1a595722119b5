package casework

import "context"

// startUp settles what earlier processes left behind before this one takes
// work. Neither step is needed for correctness, so a failure is only logged:
// leases of dead processes would expire by themselves, and duplicate cases
// are followed as they are.
func (w *Worker) startUp(ctx context.Context) {
	if err := takeOverDeadLeases(ctx, w.store, w.engine.Owner(), w.log); err != nil {
		w.log.Warn("take over the leases of dead worker processes", "err", err)
	}
	w.reportDuplicateOpenCases(ctx)
}

// reportDuplicateOpenCases names, at warn, every 1688 order with a second
// open case: such pairs were opened before one open case per order was
// enforced, and only the operator can tell which of their refunds exist.
func (w *Worker) reportDuplicateOpenCases(ctx context.Context) {
	dups, err := w.store.DuplicateOpenCases(ctx)
	if err != nil {
		w.log.Warn("duplicate open cases", "err", err)
		return
	}
	for _, c := range dups {
		w.log.Warn("a 1688 order has a second open case, opened before one case per order was enforced: both are followed as they are; check on the platform which of their refunds exist (refundctl show for both cases)",
			"case", c.ID, "first_case", c.DuplicateOf, "order", c.OrderID, "state", c.State)
	}
}
