package sandbox

import (
	"container/heap"
	"context"
	"time"
)

// scheduleLocked queues a seller move for r after delay. The move is skipped
// if r changed in between (r.seq). Timers use the real clock, not Config.Now,
// so a frozen test clock does not stop the seller.
func (s *Sandbox) scheduleLocked(r *Refund, kind taskKind, delay time.Duration) {
	s.taskSeq++
	heap.Push(&s.tasks, task{at: time.Now().Add(delay), order: s.taskSeq, refundID: r.RefundID, refundSeq: r.seq, kind: kind})
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// runScheduler applies due seller moves until ctx is done.
func (s *Sandbox) runScheduler(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := s.runDueTasks()
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if next > 0 {
			timer.Reset(next)
		}
		var tc <-chan time.Time
		if next > 0 {
			tc = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-tc:
		}
	}
}

// runDueTasks runs every due task and returns the wait until the next one (0: none).
func (s *Sandbox) runDueTasks() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.tasks.Len() > 0 {
		t := s.tasks[0]
		if wait := time.Until(t.at); wait > 0 {
			return wait
		}
		heap.Pop(&s.tasks)
		r := s.refunds[t.refundID]
		if r == nil || r.seq != t.refundSeq {
			continue
		}
		switch t.kind {
		case taskDecide:
			if r.waitingForSeller() {
				s.decideLocked(r)
			}
		case taskReceive:
			if r.waitingForReceipt() && s.policyLocked(s.orderOfLocked(r)).Decision != DecisionManual {
				_ = s.sellerReceiveLocked(r)
			}
		}
		s.markChanged()
	}
	return 0
}
