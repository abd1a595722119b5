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
// The payload is the raw request body exactly as received. Headers (the
// Cb-* ones set through CallbackHeaders):
//
//	Nats-Msg-Id      content hash of the envelope (callback.ContentID), 32 hex digits
//	Cb-Platform      "taobao" | "1688"
//	Cb-Type          messageType as sent
//	Cb-Received      receive time, Unix milliseconds (decimal)
//	Cb-Request-Id    the receiver's request id (also returned as X-Request-Id)
//	Cb-Park-Reason   parked only: callback.ParkReason
//	Cb-Park-Detail   parked only: a short human explanation
//	Cb-Signature     "verified" when Standard Webhooks verification passed
//	traceparent      W3C Trace Context of the receiver's publish span, only when tracing is on
//	tracestate       W3C tracestate, with traceparent, when the trace has one
//
// The trace headers (HeaderTraceParent, HeaderTraceState in trace.go) are
// the same on commands (refundctl, the console): the worker's spans for a
// message continue the trace its publisher started (docs/tracing.md).
//
// Header names are short on purpose: the server scans the header block for
// its own Nats-* headers several times per message, and measured header cost
// was the largest part of the receiver's overhead over a bare publish. The
// kind (order_status, …) is not a header: it follows from Cb-Type through
// the same callback.TypeNames the receiver uses.
//
// # Layout
//
// The package is read in layers, one file each, so that a reader who needs
// only the contract never meets the plumbing beneath the Publisher:
//
//	contract.go     subjects and headers of the callback stream (this comment)
//	stream.go       the callback stream's settings: created, updated, compared
//	commands.go     the command and dead-letter streams beside it
//	deadletters.go  the dead-letter protocol: reasons, Dl-*/Rh-* headers, the copy and the retry
//	trace.go        the trace context headers: InjectTrace, ExtractTrace, RetriedTrace
//	publisher.go    Publisher: one publish, a Nats-Msg-Id, a bounded wait for the PubAck
//	puback.go       the PubAck decoder under Publish
//	connmux.go      connMux: the request multiplexer under Publish
package events

import (
	"strconv"
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

// CallbackHeaders are the Cb-* headers of one stored callback. Everything that
// stores a callback (the receiver, `refundctl replay --file`) sets them
// through Fill or Header, so which header carries what, how the receive
// time is written and when the park and signature headers are present is
// said here only.
type CallbackHeaders struct {
	Platform   string    // callback.Platform.String(): "taobao" | "1688"
	Type       string    // messageType as sent
	Received   time.Time // written as Unix milliseconds
	RequestID  string    // the receiver's request id, or what stands for it
	ParkReason string    // a callback.ParkReason; "" for an accepted callback
	ParkDetail string    // parked only: a short human explanation
	Verified   bool      // Standard Webhooks verification passed

	// vals backs the value slices Fill puts into a header, so that a pooled
	// CallbackHeaders fills a pooled header without allocating them.
	vals [7]string
}

// Fill sets c's headers in h, which holds no Cb-* headers yet; the park
// headers only for a parked callback, the signature header only when it was
// verified. The values share c's storage: c must stay unchanged, and must
// not fill another header, while h is in use. That is what keeps the
// receiver's pooled messages free of allocations (its allocation tests);
// other callers want Header.
func (c *CallbackHeaders) Fill(h nats.Header) {
	v := &c.vals
	v[0], v[1], v[2], v[3] = c.Platform, c.Type, strconv.FormatInt(c.Received.UnixMilli(), 10), c.RequestID
	h[HeaderPlatform] = v[0:1:1]
	h[HeaderType] = v[1:2:2]
	h[HeaderReceivedAt] = v[2:3:3]
	h[HeaderRequestID] = v[3:4:4]
	if c.ParkReason != "" {
		v[4], v[5] = c.ParkReason, c.ParkDetail
		h[HeaderParkReason] = v[4:5:5]
		h[HeaderParkDetail] = v[5:6:6]
	}
	if c.Verified {
		v[6] = SignatureVerified
		h[HeaderSignature] = v[6:7:7]
	}
}

// Header returns a new header holding c's headers (see Fill), with room for
// the Nats-Msg-Id the publisher adds.
func (c CallbackHeaders) Header() nats.Header {
	h := make(nats.Header, len(c.vals)+1)
	c.Fill(h)
	return h
}

// AcceptedSubject returns callbacks.<platform>.<messageType>. messageType must
// be a subject token; the receiver guarantees it by only using known types.
func AcceptedSubject(platform, messageType string) string {
	return SubjectAccepted + "." + platform + "." + messageType
}

// ParkedSubject returns parked.callbacks.<platform>.
func ParkedSubject(platform string) string {
	return SubjectParked + "." + platform
}
