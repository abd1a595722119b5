// Package events is the JetStream side of the product, shared by the receiver
// (which publishes callbacks) and the worker and CLI (which consume them).
//
// # Stream
//
// One stream (default name CALLBACKS, file storage, limits retention) holds
// every callback the receiver answered 200 for. Its subjects are:
//
//	callbacks.<platform>.<messageType>   accepted: known type, ids present
//	parked.callbacks.<platform>          parked: unknown type or body failed its checks
//
// <platform> is "taobao" or "1688" (callback.Platform.String). <messageType>
// is the wire name, which the receiver only puts in a subject for known types
// (validated at start-up to be a subject token). Parked messages share the
// stream, so they get the same durability, retention and dedupe window, but
// live under a prefix that a worker filter of "callbacks.>" never matches; an
// operator reads them with the filter "parked.callbacks.>" (the type and the
// reason are in headers, since an unknown type may not be a valid token).
//
// The receiver owns the stream's settings: it creates or updates the stream
// idempotently at start-up (EnsureStream). The worker only creates it when it
// is missing (CreateStreamIfMissing: the worker started first) and otherwise
// leaves it as the receiver set it, so that a worker start never undoes a
// receiver's CALLBACK_MAX_BYTES or CALLBACK_STREAM_* settings. Both read those
// settings with the same code (envconfig.Reader.CallbackStream). Defaults:
// MaxAge 7 days (longer than the platform's 5 × 30 min retry horizon and
// any worker outage we plan for), Duplicates window 2 minutes (the JetStream
// default; it catches near-simultaneous resends and publisher retries, not the
// platform's 30-minute retries, which the worker's inbox table dedupes on the
// same Nats-Msg-Id), MaxBytes 1 GiB, MaxMsgSize 1 MiB (raised to fit a larger
// CALLBACK_MAX_BYTES), replicas configurable
// (1 for a single server, 3 in a cluster), and Discard new: a full stream
// refuses new publishes (the receiver answers 503 and the platform retries)
// rather than silently deleting the oldest callbacks, which were already
// answered 200 and may not have been consumed yet.
//
// What a PubAck is worth: with file storage the server writes each message to
// the OS before acking but fsyncs only every sync_interval (2 min by
// default), so an acked callback survives a nats-server crash, and survives
// an OS crash or power loss only with replicas 3 or sync_interval: always
// (a server setting, not a stream one).
//
// # Messages
//
// The payload is the raw request body exactly as received. Headers:
//
//	Nats-Msg-Id      content hash of the envelope (callback.ContentID), 32 hex digits
//	Cb-Platform      "taobao" | "1688"
//	Cb-Type          messageType as sent
//	Cb-Received      receive time, Unix milliseconds (decimal)
//	Cb-Request-Id    the receiver's request id (also returned as X-Request-Id)
//	Cb-Park-Reason   parked only: callback.ParkReason
//	Cb-Park-Detail   parked only: a short human explanation
//	Cb-Signature     "verified" when Standard Webhooks verification passed
//
// Header names are short on purpose: the server scans the header block for
// its own Nats-* headers several times per message, and measured header cost
// was the largest part of the receiver's overhead over a bare publish. The
// kind (order_status, …) is not a header: it follows from Cb-Type through
// the same callback.TypeNames the receiver uses.
package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Subject prefixes. SubjectAccepted is what the worker filters on
// ("callbacks.>"); SubjectParked is deliberately outside it.
const (
	SubjectAccepted = "callbacks"
	SubjectParked   = "parked.callbacks"
)

// Header names set on every published callback (see the package doc).
const (
	HeaderMsgID       = jetstream.MsgIDHeader // "Nats-Msg-Id": content hash
	HeaderPlatform    = "Cb-Platform"         // "taobao" | "1688"
	HeaderType        = "Cb-Type"             // messageType as sent
	HeaderReceivedAt  = "Cb-Received"         // receive time, Unix milliseconds
	HeaderRequestID   = "Cb-Request-Id"       // the receiver's request id
	HeaderParkReason  = "Cb-Park-Reason"      // parked only: callback.ParkReason
	HeaderParkDetail  = "Cb-Park-Detail"      // parked only: short explanation
	HeaderSignature   = "Cb-Signature"        // "verified" when Standard Webhooks verification passed
	SignatureVerified = "verified"
)

// AcceptedSubject returns callbacks.<platform>.<messageType>. messageType must
// be a subject token; the receiver guarantees it by only using known types.
func AcceptedSubject(platform, messageType string) string {
	return SubjectAccepted + "." + platform + "." + messageType
}

// ParkedSubject returns parked.callbacks.<platform>.
func ParkedSubject(platform string) string {
	return SubjectParked + "." + platform
}

// Stream defaults (see the package doc for the reasons).
const (
	DefaultStreamName  = "CALLBACKS"
	DefaultMaxAge      = 7 * 24 * time.Hour
	DefaultDuplicates  = 2 * time.Minute
	DefaultMaxBytes    = 1 << 30
	DefaultMaxMsgSize  = 1 << 20
	DefaultReplicas    = 1
	DefaultPublishWait = 500 * time.Millisecond
)

// StreamConfig is the part of the callback stream's configuration that
// deployments choose.
type StreamConfig struct {
	Name       string
	MaxAge     time.Duration
	Duplicates time.Duration
	MaxBytes   int64
	MaxMsgSize int32
	Replicas   int
}

// DefaultStreamConfig returns the documented defaults.
func DefaultStreamConfig() StreamConfig {
	return StreamConfig{
		Name:       DefaultStreamName,
		MaxAge:     DefaultMaxAge,
		Duplicates: DefaultDuplicates,
		MaxBytes:   DefaultMaxBytes,
		MaxMsgSize: DefaultMaxMsgSize,
		Replicas:   DefaultReplicas,
	}
}

// Validate checks the limits JetStream would reject, with clearer messages.
func (c StreamConfig) Validate() error {
	switch {
	case c.Name == "":
		return errors.New("stream name is empty")
	case c.MaxAge <= 0:
		return fmt.Errorf("stream max age %s: must be positive", c.MaxAge)
	case c.Duplicates < 100*time.Millisecond || c.Duplicates > c.MaxAge:
		return fmt.Errorf("stream duplicate window %s: must be between 100ms and the max age %s", c.Duplicates, c.MaxAge)
	case c.MaxBytes <= 0:
		return fmt.Errorf("stream max bytes %d: must be positive", c.MaxBytes)
	case c.MaxMsgSize <= 0:
		return fmt.Errorf("stream max message size %d: must be positive", c.MaxMsgSize)
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("stream replicas %d: must be 1 to 5", c.Replicas)
	}
	for _, r := range c.Name {
		if r <= ' ' || r == '.' || r == '*' || r == '>' || r == '/' || r == '\\' {
			return fmt.Errorf("stream name %q: no spaces, '.', '*', '>' or slashes", c.Name)
		}
	}
	return nil
}

// JetStream returns the full stream configuration.
func (c StreamConfig) JetStream() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        c.Name,
		Description: "platform callbacks received by refundhub (accepted and parked)",
		Subjects:    []string{SubjectAccepted + ".>", SubjectParked + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardNew, // never drop an acknowledged callback to make room
		MaxAge:      c.MaxAge,
		MaxBytes:    c.MaxBytes,
		MaxMsgSize:  c.MaxMsgSize,
		MaxMsgs:     -1,
		Duplicates:  c.Duplicates,
		Replicas:    c.Replicas,
	}
}

// EnsureStream creates the stream or updates it to cfg; running it again
// with the same cfg changes nothing.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) (jetstream.Stream, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ensure stream: %w", err)
	}
	s, err := js.CreateOrUpdateStream(ctx, cfg.JetStream())
	if err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", cfg.Name, err)
	}
	return s, nil
}

// CreateStreamIfMissing creates the stream from cfg if it does not exist and
// otherwise leaves it exactly as it is; created says which. It is for a
// process that needs the stream but does not own its settings (the worker:
// the receiver owns them and applies them with EnsureStream). Compare the
// settings of a stream it did not create with cfg.Differences.
func CreateStreamIfMissing(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) (s jetstream.Stream, created bool, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, false, fmt.Errorf("stream %s: %w", cfg.Name, err)
	}
	s, err = js.Stream(ctx, cfg.Name)
	if err == nil {
		return s, false, nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, false, fmt.Errorf("look up stream %s: %w", cfg.Name, err)
	}
	s, err = js.CreateStream(ctx, cfg.JetStream())
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		// Created by someone else (a receiver starting at the same moment)
		// since we looked: theirs stands.
		s, err = js.Stream(ctx, cfg.Name)
		if err != nil {
			return nil, false, fmt.Errorf("look up stream %s: %w", cfg.Name, err)
		}
		return s, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("create stream %s: %w", cfg.Name, err)
	}
	return s, true, nil
}

// Differences names each setting of an existing stream (have) that differs
// from what c would configure, as "field <have> vs <c's>" with the field in
// NATS's own spelling (max_msg_size, …), so that a process that leaves the
// stream alone can say what it would have chosen differently. It is empty
// when they agree.
func (c StreamConfig) Differences(have jetstream.StreamConfig) []string {
	want := c.JetStream()
	var out []string
	diff := func(field string, h, w any) {
		if h != w {
			out = append(out, fmt.Sprintf("%s %v vs %v", field, h, w))
		}
	}
	diff("subjects", strings.Join(have.Subjects, ","), strings.Join(want.Subjects, ","))
	diff("retention", have.Retention, want.Retention)
	diff("storage", have.Storage, want.Storage)
	diff("discard", have.Discard, want.Discard)
	diff("max_age", have.MaxAge, want.MaxAge)
	diff("max_bytes", have.MaxBytes, want.MaxBytes)
	diff("max_msg_size", have.MaxMsgSize, want.MaxMsgSize)
	diff("max_msgs", have.MaxMsgs, want.MaxMsgs)
	diff("duplicate_window", have.Duplicates, want.Duplicates)
	diff("num_replicas", have.Replicas, want.Replicas)
	return out
}

// ConnectOptions returns the nats.go options every long-running publisher
// uses: reconnect forever with capped, jittered exponential backoff (so a
// receiver recovers whenever NATS returns), connect retries at start-up, and
// no reconnect buffer, so that a publish while disconnected fails at once
// (the receiver then answers 503) instead of sitting in a buffer that would
// be flushed after the sender was already told to retry.
func ConnectOptions(name string) []nats.Option {
	return []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectBufSize(-1),
		nats.CustomReconnectDelay(ReconnectDelay),
		nats.PingInterval(10 * time.Second),
		nats.MaxPingsOutstanding(2),
	}
}

// ReconnectDelay is the backoff between reconnect rounds: 100ms doubling up
// to 5s, plus up to 25% random jitter so that many receivers do not reconnect in step.
func ReconnectDelay(attempts int) time.Duration {
	d := 100 * time.Millisecond
	for i := 1; i < attempts && d < 5*time.Second; i++ {
		d *= 2
	}
	if d > 5*time.Second {
		d = 5 * time.Second
	}
	return d + rand.N(d/4+1)
}

// Errors returned by Publisher.Publish; both mean "not stored, tell the
// sender to retry".
var (
	// ErrNotConnected: the NATS connection is down (reconnecting or closed).
	ErrNotConnected = errors.New("nats not connected")
	// ErrPublishTimeout: no PubAck within the publish wait.
	ErrPublishTimeout = errors.New("no jetstream ack in time")
)

// Ack is the stream's answer to a publish.
type Ack struct {
	Stream    string
	Sequence  uint64
	Duplicate bool // the Nats-Msg-Id was already stored inside the duplicate window
}

// DefaultPublishConns is how many NATS connections a receiver publishes on by
// default. Each connection has its own client flusher and reader and its own
// read loop in the server (all of them feed the one goroutine per stream
// that stores messages), so two connections let that I/O work run on both
// cores of a small machine. In six paired runs of cmd/receiverbench on the
// 2-core development machine, two connections gave 4% more throughput than
// one on average (−2% to +9%) at about the same CPU per request; three or
// four cost 3–11% more CPU per request than two (more, smaller socket reads
// and writes) and gave less throughput. Those runs predate the combined
// sends of connMux; with them, two connections still did better than one
// (throughput 1.00–1.06x the baseline in three runs, against 0.97–1.00x).
const DefaultPublishConns = 2

// Publisher publishes messages to JetStream synchronously, each with a
// Nats-Msg-Id and a bounded wait for the PubAck. It publishes on one NATS
// connection or spreads publishes over several (NewPooledPublisher).
type Publisher struct {
	conns []*nats.Conn
	jss   []jetstream.JetStream
	muxes []*connMux // muxes[i] sends the requests of conns[i]
	wait  time.Duration
	next  atomic.Uint32 // round-robin position in conns
	// stream is the stream name of the latest ack. Every ack names the same
	// stream, so the decoder reuses this string instead of allocating one
	// per publish.
	stream atomic.Pointer[string]
}

// NewPublisher returns a Publisher on nc that waits at most wait for each
// ack (DefaultPublishWait if wait <= 0).
func NewPublisher(nc *nats.Conn, wait time.Duration) (*Publisher, error) {
	return NewPooledPublisher([]*nats.Conn{nc}, wait)
}

// NewPooledPublisher returns a Publisher that takes conns in turn for its
// publishes and waits at most wait for each ack (DefaultPublishWait if
// wait <= 0). A publish whose connection is down is tried on the next one
// within the same wait (the message was not sent: ConnectOptions keeps no
// reconnect buffer; and if it had been, the Nats-Msg-Id dedupes it), so the
// Publisher stores messages while any connection is up. It subscribes once on
// each connection, to its reply inbox. The caller owns the connections: it
// drains or closes every one of them.
func NewPooledPublisher(conns []*nats.Conn, wait time.Duration) (*Publisher, error) {
	if len(conns) == 0 {
		return nil, errors.New("publisher: no nats connection")
	}
	p := &Publisher{conns: slices.Clone(conns), wait: wait}
	if p.wait <= 0 {
		p.wait = DefaultPublishWait
	}
	for i, nc := range p.conns {
		if nc == nil {
			return nil, fmt.Errorf("publisher: nats connection #%d is nil", i+1)
		}
		js, err := jetstream.New(nc)
		if err != nil {
			return nil, fmt.Errorf("jetstream: %w", err)
		}
		p.jss = append(p.jss, js)
		mux, err := newConnMux(nc)
		if err != nil {
			for _, m := range p.muxes {
				_ = m.sub.Unsubscribe()
			}
			return nil, fmt.Errorf("publisher: nats connection #%d: %w", i+1, err)
		}
		p.muxes = append(p.muxes, mux)
	}
	return p, nil
}

// Connected reports whether at least one of the Publisher's connections is
// connected, that is whether a publish can reach NATS right now.
func (p *Publisher) Connected() bool {
	for _, nc := range p.conns {
		if nc.IsConnected() {
			return true
		}
	}
	return false
}

// JetStream returns a JetStream context on a connected connection of the
// Publisher (the first connection when none is), for stream management and
// readiness checks.
func (p *Publisher) JetStream() jetstream.JetStream {
	for i, nc := range p.conns {
		if nc.IsConnected() {
			return p.jss[i]
		}
	}
	return p.jss[0]
}

// Publish stores m (whose Header must be non-nil) with the given Nats-Msg-Id
// and returns the ack. It returns only after the stream acknowledged the
// message, or when the publish wait (or ctx) ran out. Errors wrap
// ErrNotConnected or ErrPublishTimeout when those apply.
//
// It is a core NATS request to the stream's subject plus a small PubAck
// decoder rather than jetstream.PublishMsg: the same protocol, without a
// context, an options struct and a reflective JSON decode per message (this
// is the receiver's hot path), and sent so that concurrent publishes share
// socket writes (see connMux). Like jetstream.PublishMsg it retries "no
// responders" (a stream leader election) within the wait.
func (p *Publisher) Publish(ctx context.Context, m *nats.Msg, msgID string) (Ack, error) {
	// No IsConnected pre-check: it takes the connection's lock on every
	// publish, and with ConnectOptions (no reconnect buffer) a publish while
	// disconnected fails at once anyway (and then tries the next connection).
	m.Header[HeaderMsgID] = []string{msgID}
	deadline := time.Now().Add(p.wait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	i := 0
	if len(p.conns) > 1 {
		i = int(p.next.Add(1) % uint32(len(p.conns)))
	}
	tried := 1
	for {
		if err := ctx.Err(); err != nil {
			return Ack{}, fmt.Errorf("publish %s: %w", m.Subject, err)
		}
		left := time.Until(deadline)
		if left <= 0 {
			return Ack{}, fmt.Errorf("publish %s: %w", m.Subject, ErrPublishTimeout)
		}
		resp, err := p.muxes[i].request(m, left)
		switch {
		case err == nil:
			var known string
			if s := p.stream.Load(); s != nil {
				known = *s
			}
			ack, err := decodePubAck(resp.Data, known)
			if err != nil {
				return Ack{}, fmt.Errorf("publish %s: %w", m.Subject, err)
			}
			if ack.Stream != known {
				name := ack.Stream
				p.stream.Store(&name)
			}
			return ack, nil
		case errors.Is(err, nats.ErrNoResponders) && time.Until(deadline) > noRespondersPause:
			select {
			case <-ctx.Done():
			case <-time.After(noRespondersPause):
			}
			continue
		case errors.Is(err, nats.ErrNoResponders):
			return Ack{}, fmt.Errorf("publish %s: no stream answers: %w", m.Subject, err)
		case errors.Is(err, nats.ErrTimeout):
			return Ack{}, fmt.Errorf("publish %s: %w: %w", m.Subject, ErrPublishTimeout, err)
		case notConnected(p.conns[i], err) && tried < len(p.conns):
			i = (i + 1) % len(p.conns)
			tried++
			continue
		case notConnected(p.conns[i], err):
			return Ack{}, fmt.Errorf("publish %s: %w: %w", m.Subject, ErrNotConnected, err)
		default:
			return Ack{}, fmt.Errorf("publish %s: %w", m.Subject, err)
		}
	}
}

// notConnected reports whether err from a request on nc means that nc is
// not connected. A connection that has not reached a server yet
// (RetryOnFailedConnect) knows no server features and refuses a message with
// headers as "headers not supported".
func notConnected(nc *nats.Conn, err error) bool {
	return errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrConnectionReconnecting) ||
		errors.Is(err, nats.ErrReconnectBufExceeded) || errors.Is(err, nats.ErrConnectionDraining) ||
		errors.Is(err, nats.ErrDisconnected) ||
		errors.Is(err, nats.ErrHeadersNotSupported) && !nc.IsConnected()
}

// noRespondersPause is the pause before retrying a publish nobody answered.
const noRespondersPause = 50 * time.Millisecond

// decodePubAck decodes the stream's answer. The server writes successful
// acks in one fixed shape, {"stream":"S","seq":N} with an optional
// ,"duplicate": true, which is read without encoding/json; anything else
// (errors, domains, batches) goes through encoding/json. When the stream is
// named knownStream, that string is used rather than a new copy.
func decodePubAck(d []byte, knownStream string) (Ack, error) {
	if ack, ok := fastPubAck(d, knownStream); ok {
		return ack, nil
	}
	var r struct {
		Error *struct {
			Code        int    `json:"code"`
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
		Stream    string `json:"stream"`
		Seq       uint64 `json:"seq"`
		Duplicate bool   `json:"duplicate"`
	}
	if err := json.Unmarshal(d, &r); err != nil {
		return Ack{}, fmt.Errorf("invalid jetstream ack: %w", err)
	}
	if r.Error != nil {
		return Ack{}, fmt.Errorf("jetstream error %d/%d: %s", r.Error.Code, r.Error.ErrCode, r.Error.Description)
	}
	if r.Stream == "" {
		return Ack{}, errors.New("invalid jetstream ack: no stream")
	}
	return Ack{Stream: r.Stream, Sequence: r.Seq, Duplicate: r.Duplicate}, nil
}

func fastPubAck(d []byte, knownStream string) (Ack, bool) {
	const pre = `{"stream":"`
	const seqKey = `","seq":`
	if !bytes.HasPrefix(d, []byte(pre)) {
		return Ack{}, false
	}
	rest := d[len(pre):]
	q := bytes.IndexByte(rest, '"')
	if q <= 0 || bytes.IndexByte(rest[:q], '\\') >= 0 || !bytes.HasPrefix(rest[q:], []byte(seqKey)) {
		return Ack{}, false
	}
	stream := rest[:q]
	rest = rest[q+len(seqKey):]
	var seq uint64
	i := 0
	for ; i < len(rest) && rest[i] >= '0' && rest[i] <= '9' && i < 19; i++ {
		seq = seq*10 + uint64(rest[i]-'0')
	}
	if i == 0 {
		return Ack{}, false
	}
	rest = rest[i:]
	ack := Ack{Stream: knownStream, Sequence: seq}
	if string(stream) != knownStream {
		ack.Stream = string(stream)
	}
	switch {
	case len(rest) == 1 && rest[0] == '}':
	case bytes.Equal(rest, []byte(`,"duplicate": true}`)) || bytes.Equal(rest, []byte(`,"duplicate":true}`)):
		ack.Duplicate = true
	default:
		return Ack{}, false
	}
	return ack, true
}

// connMux sends the Publisher's requests on one connection and hands each
// reply to its waiting publisher, like nats.go's Conn.RequestMsg but with
// concurrent requests combined into shared socket writes and without a timer
// per request.
//
// Why: nats.go buffers a publish and wakes its flusher goroutine, which the
// Go scheduler runs next on the same processor, that is as soon as the
// publishing goroutine parks to wait for its reply. With RequestMsg every
// publish therefore became its own write(2) (0.99 per request under the
// receiverbench load, counted with perf on sys_enter_write), and the
// server's read loop woke up for each: the largest kernel cost the receiver
// added to a request.
//
// How: the first request to arrive while no send is in progress becomes the
// sender. It yields its processor once (runtime.Gosched), so that goroutines
// already runnable (other callbacks on their way to Publish) queue their
// messages behind it; then it publishes everything queued back to back and
// only then parks to wait for its own reply, at which point the flusher
// writes the whole batch in one call (0.26 writes per request). A request
// that finds a sender at work only queues its message. Nothing waits on a
// timer to gather a batch: the yield lets only work that is already
// runnable go first.
//
// Replies come to one subscription per connection, <inbox>.*, with the
// request's token as the last subject token. Waits are bounded by a sweeper
// goroutine that runs while any request is in flight and, every sweepTick,
// fails those whose deadline has passed: a wait lasts its timeout and up to
// one tick more (as with a timer, the full wait and never less), and a
// publisher waits on one channel instead of a channel and a timer (the
// runtime's timer heap work was about 1 µs per request).
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
	// (receiverbench -conns 1: 13% more CPU per request).
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
