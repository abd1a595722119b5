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
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/refundhub/refundhub/internal/platform"
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

// CallbackEnvelope is a push as documented (reference §3.2, DOC-MSG): the
// message type, the body as a JSON string, the platform's messagePlatform
// value (from the profile) and the push time in milliseconds as a string.
type CallbackEnvelope struct {
	MessageType     string `json:"messageType"`
	MessageBody     string `json:"messageBody"`
	MessagePlatform int    `json:"messagePlatform"`
	Timestamp       string `json:"timestamp"`
}

// CallbackRecord is one callback and its delivery history.
type CallbackRecord struct {
	ID            string           `json:"id"`
	Type          string           `json:"type"`
	Kind          platform.Kind    `json:"kind"`
	Platform      string           `json:"platform"` // PlatformTaobao or Platform1688
	Subject       string           `json:"subject"`  // refund or order id
	Envelope      CallbackEnvelope `json:"envelope"`
	Status        string           `json:"status"`
	Attempts      int              `json:"attempts"` // attempts of the original (duplicates not included)
	Duplicated    bool             `json:"duplicated"`
	Reordered     bool             `json:"reordered"`
	LastError     string           `json:"last_error,omitempty"`
	CreatedAt     time.Time        `json:"created_at"`
	NextAttemptAt time.Time        `json:"next_attempt_at,omitzero"`
	DeliveredAt   time.Time        `json:"delivered_at,omitzero"`

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

// enqueue records rec (ID, Type, Kind, Platform, Subject and Envelope set)
// and queues it for pushing, applying the push faults.
func (c *callbacks) enqueue(s *Sandbox, rec *CallbackRecord, push bool, drop, dup, reorder float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	rec.ID, rec.CreatedAt, rec.epoch = fmt.Sprintf("cb-%06d", c.seq), s.now(), c.epoch
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
	// Every pusher keeps its connection: with the default two idle
	// connections per host, each burst closed the rest and dialled again.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = max(s.cfg.PushConcurrency, tr.MaxIdleConnsPerHost)
	tr.MaxIdleConns = max(s.cfg.PushConcurrency, tr.MaxIdleConns)
	client := &http.Client{Transport: tr}
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
func (s *Sandbox) post(ctx context.Context, client *http.Client, env CallbackEnvelope) error {
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

// cbKey names one platform's kind of message.
type cbKey struct {
	taobao bool
	kind   platform.Kind
}

// pushTypes picks the message type the sandbox pushes for each platform and
// kind: the first of the profile's type names of that kind, in byte order
// (the profile's types table has no order of its own). A kind the profile
// names no type for is not pushed.
func pushTypes(p *platform.Profile) map[cbKey]string {
	out := map[cbKey]string{}
	for _, taobao := range []bool{true, false} {
		types := p.Callbacks.Alibaba.Types
		if taobao {
			types = p.Callbacks.Taobao.Types
		}
		names := make([]string, 0, len(types))
		for name := range types {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			k := cbKey{taobao, types[name]}
			if _, ok := out[k]; !ok {
				out[k] = name
			}
		}
	}
	return out
}

// cbBody writes a message body with exactly the profile's fields for the
// kind on that platform, in the profile's order: the value the sandbox knows
// from known, null for a field it has no value for.
func (s *Sandbox) cbBody(taobao bool, kind platform.Kind, known map[string]any) string {
	fields := s.prof.Callbacks.Alibaba.Fields[kind]
	if taobao {
		fields = s.prof.Callbacks.Taobao.Fields[kind]
	}
	var body orderedObject
	for _, f := range fields {
		body.add(f, known[f]) // a missing key gives nil: null
	}
	b, err := json.Marshal(body)
	if err != nil { // cannot happen: strings, numbers, money and nil
		s.log.Error("sandbox: encode callback body", "err", err)
		return "{}"
	}
	return string(b)
}

// emitRefundLocked queues the refund message of r's current status.
func (s *Sandbox) emitRefundLocked(r *Refund) {
	taobao := r.Platform == PlatformTaobao
	known := map[string]any{"refundId": r.RefundID, "orderId": r.OrderID, "refundStatus": r.Status}
	if taobao {
		known["subOrderId"] = r.SubOrderID
		known["refundAmount"] = s.tbMoney(r.RefundFee)
	} else {
		known["refundAmount"] = s.abMoney(r.ApplyPayment)
	}
	s.emitLocked(taobao, platform.KindRefund, docTypeRefund, s.cbBody(taobao, platform.KindRefund, known), r.RefundID)
}

// emitOrderLocked queues an order message of kind (order_status or
// price_modify) with the order as it is now.
func (s *Sandbox) emitOrderLocked(o *Order, kind platform.Kind) {
	taobao := o.Platform == PlatformTaobao
	m := s.abMoney
	if taobao {
		m = s.tbMoney
	}
	payStatus := 1 // observed with unpaid and cancelled-unpaid orders; 2 once paid (INFERRED meaning)
	var payTime *string
	if o.PaidAt != nil {
		payStatus, payTime = 2, s.timeOrNull(*o.PaidAt)
	}
	known := map[string]any{
		"orderId":       o.OrderID,
		"orderNo":       o.OrderNo,
		"orderStatus":   o.Status,
		"payStatus":     payStatus,
		"totalAmount":   m(o.Amount + o.Carriage),
		"shippingFee":   m(o.Carriage),
		"productAmount": m(o.Amount),
		"refundAmount":  m(o.Refunded),
		"refundStatus":  nil, // null in every documented example
		"closeReason":   str(o.CloseReason),
		"tbCreateTime":  s.timeOrNull(o.CreatedAt),
		"payTime":       payTime,
	}
	s.emitLocked(taobao, kind, docOrderType(o, kind), s.cbBody(taobao, kind, known), o.OrderID)
}

// The message types the documentation shows (DOC, 1688 examples), and the
// messagePlatform values it documents.
const (
	docTypeCreate      = "ORDER_CREATE"
	docTypeCancel      = "ORDER_CANCEL"
	docTypePaySuccess  = "ORDER_PAY_SUCCESS"
	docTypePriceModify = "ORDER_BUYER_VIEW_ORDER_PRICE_MODIFY"
	docTypeRefund      = "ORDER_BUYER_VIEW_ORDER_BUYER_REFUND"
)

// messagePlatform is the documented messagePlatform value: 0 Taobao, 1 1688.
func messagePlatform(taobao bool) int {
	if taobao {
		return 0
	}
	return 1
}

// docOrderType is the documented type of an order message in the order's
// present state.
func docOrderType(o *Order, kind platform.Kind) string {
	switch {
	case kind == platform.KindPriceModify:
		return docTypePriceModify
	case o.CloseReason != "":
		return docTypeCancel
	case o.PaidAt != nil:
		return docTypePaySuccess
	}
	return docTypeCreate
}

// emitLocked records and queues one push.
//
// preferred is the type the documentation shows for the event (1688's
// ORDER_CREATE, ORDER_PAY_SUCCESS, …): it is pushed when the profile lists
// it with the same kind, so a replayed order still tells a creation from a
// cancellation; otherwise the profile's first type of the kind is.
func (s *Sandbox) emitLocked(taobao bool, kind platform.Kind, preferred, body, subject string) {
	name, ok := s.cbTypes[cbKey{taobao, kind}]
	if k, known := s.prof.CallbackKind(taobao, preferred); known && k == kind {
		name, ok = preferred, true
	}
	platformName := Platform1688
	if taobao {
		platformName = PlatformTaobao
	}
	if !ok {
		s.log.Warn("sandbox: the profile names no message type of this kind; not pushed", "platform", platformName, "kind", kind)
		return
	}
	rec := &CallbackRecord{Type: name, Kind: kind, Platform: platformName, Subject: subject, Envelope: CallbackEnvelope{
		MessageType:     name,
		MessageBody:     body,
		MessagePlatform: messagePlatform(taobao),
		Timestamp:       strconv.FormatInt(s.now().UnixMilli(), 10),
	}}
	f := s.faults
	s.cb.enqueue(s, rec, s.cfg.CallbackURL != "", f.DropPushRate, f.DuplicatePushRate, f.ReorderPushRate)
}
