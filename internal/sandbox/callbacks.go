package sandbox

import (
	"bytes"
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/refundhub/refundhub/internal/callback"
)

// Callback record statuses (GET /_sandbox/callbacks).
const (
	CallbackRecorded  = "recorded"   // no CallbackURL: kept, never pushed
	CallbackQueued    = "queued"     // waiting for a push slot
	CallbackHeld      = "held"       // reorder fault: waits for the next callback
	CallbackInFlight  = "in_flight"  // being pushed
	CallbackRetryWait = "retry_wait" // failed; next attempt at NextAttemptAt
	CallbackDelivered = "delivered"  // acknowledged with HTTP 200
	CallbackGaveUp    = "gave_up"    // failed 1+PushRetries times
	CallbackDropped   = "dropped"    // drop fault: never sent
)

// maxRecords bounds the callback log: beyond it the oldest finished records
// (delivered, given up, dropped, recorded) are forgotten.
const maxRecords = 10000

// holdMax bounds how long the reorder fault holds a callback when no other
// callback comes along.
const holdMax = 5 * time.Second

// CallbackRecord is one callback and its delivery history.
type CallbackRecord struct {
	ID            string            `json:"id"`
	Type          string            `json:"type"`
	Platform      callback.Platform `json:"platform"`
	Subject       string            `json:"subject"` // refund or order id
	Envelope      callback.Envelope `json:"envelope"`
	Status        string            `json:"status"`
	Attempts      int               `json:"attempts"` // attempts of the original (duplicates not included)
	Duplicated    bool              `json:"duplicated"`
	Reordered     bool              `json:"reordered"`
	LastError     string            `json:"last_error,omitempty"`
	CreatedAt     time.Time         `json:"created_at"`
	NextAttemptAt time.Time         `json:"next_attempt_at,omitzero"`
	DeliveredAt   time.Time         `json:"delivered_at,omitzero"`

	gen   uint64 // bumps when a retry is (re)scheduled; older timers are stale
	epoch uint64 // callbacks.epoch when recorded; a reset makes the record stale
}

type delivery struct {
	rec       *CallbackRecord
	duplicate bool // an extra copy: counted, never retried
	retry     bool
}

type retryItem struct {
	at  time.Time
	rec *CallbackRecord
	gen uint64
}

type retryQueue []retryItem

func (q retryQueue) Len() int           { return len(q) }
func (q retryQueue) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q retryQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *retryQueue) Push(x any)        { *q = append(*q, x.(retryItem)) }
func (q *retryQueue) Pop() any {
	old := *q
	it := old[len(old)-1]
	*q = old[:len(old)-1]
	return it
}

// callbacks is the push log and queue. It has its own lock; s.mu may be held
// when calling into it, never the other way round.
type callbacks struct {
	mu        sync.Mutex
	records   []*CallbackRecord
	queue     []delivery
	held      *CallbackRecord
	heldUntil time.Time
	retries   retryQueue
	stats     CallbackStats
	seq       uint64
	epoch     uint64 // bumped by reset
	wake      chan struct{}
}

func (c *callbacks) init() {
	c.wake = make(chan struct{}, 1)
}

func (c *callbacks) nudge() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *callbacks) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.records, c.queue, c.held, c.retries = nil, nil, nil, nil
	c.stats = CallbackStats{}
	c.epoch++ // pushes in flight now belong to the forgotten past
}

// enqueue records env and queues it for pushing, applying the push faults.
func (c *callbacks) enqueue(s *Sandbox, env callback.Envelope, subject string, push bool, drop, dup, reorder float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	rec := &CallbackRecord{ID: fmt.Sprintf("cb-%06d", c.seq), Type: env.MessageType, Platform: env.MessagePlatform,
		Subject: subject, Envelope: env, CreatedAt: s.now(), epoch: c.epoch}
	c.records = append(c.records, rec)
	if len(c.records) > maxRecords {
		c.trim()
	}
	if !push {
		rec.Status = CallbackRecorded
		return
	}
	if drop > 0 && s.randFloat() < drop {
		rec.Status = CallbackDropped
		c.stats.Dropped++
		return
	}
	duplicate := dup > 0 && s.randFloat() < dup
	if c.held == nil && reorder > 0 && s.randFloat() < reorder {
		rec.Status, rec.Reordered = CallbackHeld, true
		c.held, c.heldUntil = rec, time.Now().Add(holdMax)
		if duplicate {
			c.markDuplicate(rec)
		}
		c.nudge()
		return
	}
	rec.Status = CallbackQueued
	c.queue = append(c.queue, delivery{rec: rec})
	if duplicate {
		c.markDuplicate(rec)
	}
	c.releaseHeld()
	c.nudge()
}

// trim forgets the oldest finished records, keeping the newest half of the log.
func (c *callbacks) trim() {
	drop := len(c.records) - maxRecords/2
	kept := c.records[:0]
	for _, rec := range c.records {
		finished := rec.Status == CallbackDelivered || rec.Status == CallbackGaveUp ||
			rec.Status == CallbackDropped || rec.Status == CallbackRecorded
		if drop > 0 && finished {
			drop--
			continue
		}
		kept = append(kept, rec)
	}
	clear(c.records[len(kept):])
	c.records = kept
}

func (c *callbacks) markDuplicate(rec *CallbackRecord) {
	rec.Duplicated = true
	c.stats.Duplicated++
	c.queue = append(c.queue, delivery{rec: rec, duplicate: true})
}

// releaseHeld queues the held callback behind what is queued.
func (c *callbacks) releaseHeld() {
	if c.held == nil {
		return
	}
	c.held.Status = CallbackQueued
	c.queue = append(c.queue, delivery{rec: c.held})
	c.held = nil
}

// retryNow queues every callback waiting for a retry and returns how many.
func (c *callbacks) retryNow() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, rec := range c.records {
		if rec.Status != CallbackRetryWait {
			continue
		}
		rec.gen++
		rec.Status = CallbackQueued
		rec.NextAttemptAt = time.Time{}
		c.queue = append(c.queue, delivery{rec: rec, retry: true})
		n++
	}
	c.nudge()
	return n
}

func (c *callbacks) statsSnapshot() CallbackStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.stats
	for _, rec := range c.records {
		switch rec.Status {
		case CallbackQueued, CallbackHeld, CallbackInFlight, CallbackRetryWait:
			st.Pending++
		}
	}
	return st
}

// log returns copies of the records, oldest first.
func (c *callbacks) log() []CallbackRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]CallbackRecord, len(c.records))
	for i, rec := range c.records {
		out[i] = *rec
	}
	return out
}

// takeDue moves due retries and an expired hold into the queue and returns
// the queue and the wait until the next due item (0: none).
func (c *callbacks) takeDue() ([]delivery, time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	for c.retries.Len() > 0 && !c.retries[0].at.After(now) {
		it := heap.Pop(&c.retries).(retryItem)
		if it.rec.gen != it.gen || it.rec.Status != CallbackRetryWait {
			continue
		}
		it.rec.Status = CallbackQueued
		c.queue = append(c.queue, delivery{rec: it.rec, retry: true})
	}
	if c.held != nil && !c.heldUntil.After(now) {
		c.releaseHeld()
	}
	var next time.Duration
	if c.retries.Len() > 0 {
		next = c.retries[0].at.Sub(now)
	}
	if c.held != nil {
		if d := c.heldUntil.Sub(now); next == 0 || d < next {
			next = d
		}
	}
	q := c.queue
	c.queue = nil
	return q, next
}

// runPusher dispatches queued pushes to PushConcurrency workers until ctx is done.
func (s *Sandbox) runPusher(ctx context.Context) {
	work := make(chan delivery)
	var wg sync.WaitGroup
	client := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	defer client.CloseIdleConnections()
	for range s.cfg.PushConcurrency {
		wg.Go(func() {
			for d := range work {
				s.push(ctx, client, d)
			}
		})
	}
	defer wg.Wait()
	defer close(work)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		batch, next := s.cb.takeDue()
		for i, d := range batch {
			select {
			case work <- d:
			case <-ctx.Done():
				s.cb.requeue(batch[i:])
				return
			}
		}
		var tc <-chan time.Time
		if next > 0 {
			timer.Reset(next)
			tc = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-s.cb.wake:
		case <-tc:
		}
	}
}

// requeue puts undispatched deliveries back at the front on shutdown.
func (c *callbacks) requeue(ds []delivery) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.queue = append(append([]delivery(nil), ds...), c.queue...)
}

// push makes one HTTP attempt and records the outcome.
func (s *Sandbox) push(ctx context.Context, client *http.Client, d delivery) {
	rec := d.rec
	s.cb.mu.Lock()
	env := rec.Envelope
	if !d.duplicate {
		rec.Status = CallbackInFlight
	}
	s.cb.mu.Unlock()

	// A push cut short by shutdown counts as a failed attempt, like any other.
	err := s.post(ctx, client, env)

	s.cb.mu.Lock()
	defer s.cb.mu.Unlock()
	c := &s.cb
	if rec.epoch != c.epoch {
		return // recorded before a reset: neither counted nor retried
	}
	c.stats.Sent++
	if d.retry {
		c.stats.Retried++
	}
	if err != nil {
		c.stats.Failed++
	}
	if d.duplicate {
		return
	}
	rec.Attempts++
	if err == nil {
		rec.Status, rec.DeliveredAt, rec.LastError = CallbackDelivered, time.Now(), ""
		c.stats.Delivered++
		return
	}
	rec.LastError = err.Error()
	if rec.Attempts > s.cfg.PushRetries {
		rec.Status = CallbackGaveUp
		c.stats.GaveUp++
		s.log.Warn("sandbox: callback given up", "id", rec.ID, "type", rec.Type, "attempts", rec.Attempts, "err", err)
		return
	}
	rec.Status = CallbackRetryWait
	rec.gen++
	rec.NextAttemptAt = time.Now().Add(s.cfg.PushRetryInterval)
	heap.Push(&c.retries, retryItem{at: rec.NextAttemptAt, rec: rec, gen: rec.gen})
	c.nudge()
}

// post sends env to the callback URL: success is HTTP 200 within PushTimeout.
func (s *Sandbox) post(ctx context.Context, client *http.Client, env callback.Envelope) error {
	body, err := json.Marshal(env)
	if err != nil {
		return fmt.Errorf("encode callback: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.PushTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.CallbackURL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build callback request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		// *url.Error quotes the URL, whose path holds the receiver's secret
		// token: keep only the operation and the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			return fmt.Errorf("post callback: %s: %w", ue.Op, ue.Err)
		}
		return fmt.Errorf("post callback: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("post callback: HTTP %d", resp.StatusCode)
	}
	return nil
}
