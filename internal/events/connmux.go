package events

import (
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// per request.
//
// Why: nats.go buffers a publish and wakes its flusher goroutine, which the
// Go scheduler runs next on the same processor, that is as soon as the
// publishing goroutine parks to wait for its reply. With RequestMsg every
// publish therefore became its own write(2), and the server's read loop
// woke up for each: the largest kernel cost the receiver added to a request
// (docs/benchmarks.md, Receiver, has the counts).
//
// How: the first request to arrive while no send is in progress becomes the
// sender. It yields its processor once (runtime.Gosched), so that goroutines
// already runnable (other callbacks on their way to Publish) queue their
// messages behind it; then it publishes everything queued back to back and
// only then parks to wait for its own reply, at which point the flusher
// writes the whole batch in one call. A request
// that finds a sender at work only queues its message. Nothing waits on a
// timer to gather a batch: the yield lets only work that is already
// runnable go first.
//
// Replies come to one subscription per connection, <inbox>.*, with the
// request's token as the last subject token. Waits are bounded by a sweeper
// goroutine that runs while any request is in flight and, every sweepTick,
// fails those whose deadline has passed: a wait lasts its timeout and up to
// one tick more (as with a timer, the full wait and never less), and a
// publisher waits on one channel instead of a channel and a timer (a timer
// per request cost the runtime's timer heap work on every publish).
//
// What it buys is measured end to end by cmd/receiverbench, the receiver
// against a bare-publish baseline (docs/benchmarks.md, Receiver): drop it
// for RequestMsg only if that benchmark says it no longer pays.
type connMux struct {
	nc     *nats.Conn
	sub    *nats.Subscription // prefix + "*"
	prefix string             // reply subjects are prefix + token (base 36)
	epoch  time.Time          // deadlines are monotonic nanoseconds since epoch

	mu      sync.Mutex // guards pending and token
	pending map[uint64]*muxRequest
	token   uint64

	qmu     sync.Mutex // guards queue, spare and sending
	queue   []*muxRequest
	spare   []*muxRequest
	sending bool

	live     atomic.Int64 // requests in request()
	sweeping atomic.Bool  // a sweeper goroutine runs

	reqs sync.Pool // *muxRequest
}

// sweepTick is how often the sweeper looks for requests that ran out of
// time, and so how much longer than its timeout a request may wait.
const sweepTick = 5 * time.Millisecond

// States of a muxRequest. A request leaves reqQueued either for reqSending
// (the sender took it) or for reqCancelled (the sweeper failed it first);
// only the sender moves it from reqSending to reqSent.
const (
	reqQueued int32 = iota
	reqSending
	reqSent
	reqCancelled
)

// muxRequest is one request on a connMux, reused across requests. Whoever
// takes it out of pending (or cancels it while queued) completes it: sets
// resp or err and signals done, exactly once.
type muxRequest struct {
	m        *nats.Msg
	state    atomic.Int32
	token    uint64
	deadline int64         // see connMux.epoch
	done     chan struct{} // resp or err is set
	resp     *nats.Msg
	err      error
}

func newConnMux(nc *nats.Conn) (*connMux, error) {
	c := &connMux{nc: nc, prefix: nc.NewInbox() + ".", epoch: time.Now(), pending: map[uint64]*muxRequest{}}
	c.reqs.New = func() any { return &muxRequest{done: make(chan struct{}, 1)} }
	sub, err := nc.Subscribe(c.prefix+"*", c.onReply)
	if err != nil {
		return nil, fmt.Errorf("reply subscription: %w", err)
	}
	c.sub = sub
	return c, nil
}

func (c *connMux) now() int64 { return int64(time.Since(c.epoch)) }

// request publishes m with a reply subject of its own and waits for the
// reply, for timeout and at most sweepTick more. It does not keep m after it
// returns.
func (c *connMux) request(m *nats.Msg, timeout time.Duration) (*nats.Msg, error) {
	r := c.reqs.Get().(*muxRequest)
	r.m = m
	r.deadline = c.now() + int64(timeout)
	r.state.Store(reqQueued)
	c.live.Add(1)
	if !c.sweeping.Load() && c.sweeping.CompareAndSwap(false, true) {
		go c.sweep()
	}
	c.enqueue(r)
	<-r.done
	c.live.Add(-1)
	if r.state.Load() == reqCancelled {
		return nil, r.err // not reused: the queue may still hold it
	}
	for r.state.Load() == reqSending {
		// The reply came between the sender's publish and its last write
		// to r.
		runtime.Gosched()
	}
	resp, err := r.resp, r.err
	r.m, r.resp, r.err = nil, nil, nil
	c.reqs.Put(r)
	if err != nil {
		return nil, err
	}
	if len(resp.Data) == 0 && resp.Header.Get("Status") == "503" {
		return nil, nats.ErrNoResponders
	}
	return resp, nil
}

// enqueue queues r, and sends the queue unless another goroutine is doing so.
func (c *connMux) enqueue(r *muxRequest) {
	c.qmu.Lock()
	c.queue = append(c.queue, r)
	if c.sending {
		c.qmu.Unlock()
		return
	}
	c.sending = true
	c.qmu.Unlock()
	// Let the goroutines that are already runnable queue their requests
	// first, so that they share this batch's write; but only under load
	// (other requests in flight): Gosched wakes an idle processor, and
	// with a lone request that cost more than the write it could save
	// (docs/benchmarks.md, Receiver).
	if c.live.Load() > 1 {
		runtime.Gosched()
	}
	for {
		c.qmu.Lock()
		batch := c.queue
		if len(batch) == 0 {
			c.sending = false
			c.qmu.Unlock()
			return
		}
		c.queue, c.spare = c.spare[:0], nil
		c.qmu.Unlock()
		for i, q := range batch {
			c.send(q)
			batch[i] = nil
		}
		c.qmu.Lock()
		c.spare = batch[:0]
		c.qmu.Unlock()
	}
}

// send publishes r's message into the connection's buffer (nats.go's
// flusher writes it) unless r was already cancelled.
func (c *connMux) send(r *muxRequest) {
	if !r.state.CompareAndSwap(reqQueued, reqSending) {
		return
	}
	c.mu.Lock()
	c.token++
	tok := c.token
	r.token = tok
	c.pending[tok] = r
	c.mu.Unlock()
	m := r.m
	err := c.nc.PublishMsg(&nats.Msg{Subject: m.Subject, Reply: c.prefix + strconv.FormatUint(tok, 36), Header: m.Header, Data: m.Data})
	if err != nil {
		// Not sent, so no reply will come; unless the sweeper has just
		// failed it, complete r with the error.
		c.mu.Lock()
		_, mine := c.pending[tok]
		delete(c.pending, tok)
		c.mu.Unlock()
		if mine {
			r.err = err
			r.state.Store(reqSent)
			r.done <- struct{}{}
			return
		}
	}
	r.state.Store(reqSent)
}

// onReply hands a reply to the request waiting for it; a reply nobody waits
// for any more (its request timed out) is dropped.
func (c *connMux) onReply(m *nats.Msg) {
	t, ok := strings.CutPrefix(m.Subject, c.prefix)
	if !ok {
		return
	}
	tok, err := strconv.ParseUint(t, 36, 64)
	if err != nil {
		return
	}
	c.mu.Lock()
	r := c.pending[tok]
	delete(c.pending, tok)
	c.mu.Unlock()
	if r == nil {
		return
	}
	r.resp = m
	r.done <- struct{}{}
}

// sweep fails requests whose deadline has passed, every sweepTick, and
// returns once no request is in flight. Once the connection is closed for
// good it fails every request at once with nats.ErrConnectionClosed, as
// RequestMsg does, so that Publish can try another connection in the time
// left (a reply can no longer come: the subscription is gone). request starts it when none
// runs; the double check on the way out makes sure that a request arriving
// meanwhile either sees it running or starts another.
func (c *connMux) sweep() {
	t := time.NewTicker(sweepTick)
	defer t.Stop()
	var expired []*muxRequest
	for range t.C {
		now := c.now()
		fail := nats.ErrTimeout
		if c.nc.IsClosed() {
			now, fail = math.MaxInt64, nats.ErrConnectionClosed
		}
		c.mu.Lock()
		for tok, r := range c.pending {
			if r.deadline <= now {
				delete(c.pending, tok)
				expired = append(expired, r)
			}
		}
		c.mu.Unlock()
		c.qmu.Lock()
		for _, r := range c.queue {
			if r.deadline <= now && r.state.CompareAndSwap(reqQueued, reqCancelled) {
				expired = append(expired, r)
			}
		}
		c.qmu.Unlock()
		for i, r := range expired {
			r.err = fail
			r.done <- struct{}{}
			expired[i] = nil
		}
		expired = expired[:0]
		if c.live.Load() == 0 {
			c.sweeping.Store(false)
			if c.live.Load() == 0 || !c.sweeping.CompareAndSwap(false, true) {
				return
			}
		}
	}
}
