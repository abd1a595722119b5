package events

// The dead-letter protocol, in one place: why the worker gives up on a
// message (DeadReason), what the copy it publishes to DEADLETTERS looks like
// (DeadLetter.Msg and the Dl-* headers), and how `refundctl dead-letters
// retry` rebuilds the original for re-publishing (RetryMsg and the Rh-*
// headers). The worker (internal/casework) writes dead letters, the case
// store keeps their rows (casestore.DeadLetter), refundctl lists, retries
// and discards them; none of them spells a header or a reason itself.

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
)

// DeadReason is the machine code saying why the worker gave up on a message.
// One value travels everywhere the dead letter goes: the dead_letters row
// (casestore.DeadLetter.Reason), the Dl-Reason header of the copy on
// deadletters.<source>, the reason of the JetStream Term, the "reason" label
// of the worker's dead-letter metric, and refundctl's `dead-letters list
// --reason` filter. Operators script against these values and alert on the
// metric, so a value never changes once shipped; add a new one instead.
type DeadReason string

// Dead-letter reasons. docs/worker.md's dead-letter section explains each one to
// operators; keep the two in step.
const (
	// DeadUndecodable: a callback the parser cannot read (not a platform
	// envelope at all). The same bytes fail the same way on every delivery.
	DeadUndecodable DeadReason = "undecodable"
	// DeadInvalidCommand: a command that does not decode or validate
	// (refundflow.DecodeCommand): a bug or a version skew in the publisher.
	DeadInvalidCommand DeadReason = "invalid_command"
	// DeadPermanentError: the engine refused a decoded input for good
	// (refundflow.ErrPermanent), e.g. a Taobao refund request without an
	// order id. Retrying it unchanged fails again.
	DeadPermanentError DeadReason = "permanent_error"
	// DeadUnknownCase: a command naming a case that never appeared within
	// the worker's bounded wait for it (a wrong id, or a case whose opening
	// command was lost).
	DeadUnknownCase DeadReason = "unknown_case"
	// DeadMaxDeliveries: the input kept failing transiently (platform down,
	// rate limited, lease held) until it had been delivered
	// WORKER_MAX_DELIVER times. Usually worth a retry once the cause is fixed.
	DeadMaxDeliveries DeadReason = "max_deliveries"
	// DeadWorkerFailed: the worker itself failed on the input (a panic: a
	// bug of the build that ran it), and dead-lettered it rather than
	// crash and fail every input in flight with it, again at each
	// redelivery. The same build fails again: retry it once a fixed one
	// runs.
	DeadWorkerFailed DeadReason = "worker_failed"
	// DeadDeliveryLimit: the consumer stopped delivering the message after
	// its limit (WORKER_MAX_DELIVER + 3) with no verdict from any handler:
	// a worker process ended while it handled the message each time (a
	// kill, out of memory, a crash no recover catches), or the message
	// waited past the limit. The server says so only in an advisory,
	// which the worker keeps in a stream (DeliveryLimit) and turns into
	// this dead letter. Retried as it is, a message that ends the process
	// ends it again, and with it every input in flight: find the cause
	// first.
	DeadDeliveryLimit DeadReason = "delivery_limit"
)

// deadReasons lists every reason, in the order operators see them documented.
var deadReasons = []DeadReason{DeadUndecodable, DeadInvalidCommand, DeadPermanentError, DeadUnknownCase, DeadMaxDeliveries, DeadWorkerFailed, DeadDeliveryLimit}

// DeadReasons returns every dead-letter reason; a CLI validates a filter
// against it and lists it in the error.
func DeadReasons() []DeadReason { return slices.Clone(deadReasons) }

// Valid reports whether r is one of DeadReasons.
func (r DeadReason) Valid() bool { return slices.Contains(deadReasons, r) }

// Permanent reports whether a dead letter with reason r fails again the same
// way when it is retried unchanged: the same bytes do not decode
// (DeadUndecodable), the same command does not validate (DeadInvalidCommand),
// or the engine refuses the same input for good (DeadPermanentError, which
// includes a command naming a case id that does not exist: a case created
// later under that id would be another case), or the worker failed on it
// (DeadWorkerFailed), or ended on it (DeadDeliveryLimit: a retry that ends
// the process again ends every input in flight with it). Only a changed
// worker (a parser that reads the new type, a fixed bug, more memory) can
// make such a retry succeed, so
// refundctl asks for --force before it retries one. DeadUnknownCase and
// DeadMaxDeliveries depend on the world (the case appeared, the platform is
// back) and are worth a retry. A reason this build does not know (a newer
// worker's) is not permanent: refundctl cannot tell, and a retry costs at
// most another dead letter.
func (r DeadReason) Permanent() bool {
	switch r {
	case DeadUndecodable, DeadInvalidCommand, DeadPermanentError, DeadWorkerFailed, DeadDeliveryLimit:
		return true
	}
	return false
}

// legacyDeadReasons are values older workers stored for a reason: they wrote
// "permanent" where DeadPermanentError is meant. dead_letters rows are never
// pruned, so a filter must still find those.
var legacyDeadReasons = map[DeadReason][]string{DeadPermanentError: {"permanent"}}

// StoredValues returns every value a stored dead letter with reason r may
// carry: r itself and what older workers wrote for it.
func (r DeadReason) StoredValues() []string {
	return append([]string{string(r)}, legacyDeadReasons[r]...)
}

// StoredDeadReason returns the reason a stored value means: the value
// itself, or the reason an older worker's spelling stands for. A value this
// build does not know comes back unchanged (and is not Valid).
func StoredDeadReason(v string) DeadReason {
	for r, olds := range legacyDeadReasons {
		if slices.Contains(olds, v) {
			return r
		}
	}
	return DeadReason(v)
}

// DeadReasonList is the reasons as "a, b, c" for help and error texts.
func DeadReasonList() string {
	names := make([]string, len(deadReasons))
	for i, r := range deadReasons {
		names[i] = string(r)
	}
	return strings.Join(names, ", ")
}

// Header prefixes of dead letters and their retries. A retry strips both
// (with the server's own Nats-* headers) from the stored headers before it
// republishes, so a retried message carries only the current attempt's marks.
// ServerHeaderPrefix starts the headers the NATS server owns (Nats-Msg-Id,
// Nats-Expected-*), which no copy carries over (RepublishHeader).
const (
	DeadHeaderPrefix   = "Dl-"
	RetryHeaderPrefix  = "Rh-"
	ServerHeaderPrefix = "Nats-"
)

// Dead-letter headers, set by the worker on the copy it publishes to
// DEADLETTERS (the dead_letters row holds the same facts in columns).
const (
	HeaderDeadReason     = DeadHeaderPrefix + "Reason"     // a DeadReason
	HeaderDeadError      = DeadHeaderPrefix + "Error"      // short human explanation (never a secret)
	HeaderDeadSubject    = DeadHeaderPrefix + "Subject"    // the original subject
	HeaderDeadStream     = DeadHeaderPrefix + "Stream"     // the original stream
	HeaderDeadSequence   = DeadHeaderPrefix + "Stream-Seq" // the original stream sequence
	HeaderDeadDeliveries = DeadHeaderPrefix + "Deliveries" // deliveries before giving up
)

// Retry headers, set by a dead letter's retry (package deadletters, for
// refundctl and the console) on the republished message. HeaderRetryOf is
// the dead letter's id; HeaderRetryOriginalMsgID keeps the original
// Nats-Msg-Id, which the retry replaces so that the stream's duplicate
// window does not drop it; HeaderRetryBy names the operator who retried
// it, so that a retry that dies again says who sent it.
const (
	HeaderRetryOf            = RetryHeaderPrefix + "Retry-Of"
	HeaderRetryOriginalMsgID = RetryHeaderPrefix + "Original-Msg-Id"
	HeaderRetryBy            = RetryHeaderPrefix + "Retried-By"
)

// HeaderRetryTraceParent and HeaderRetryTraceState keep the trace a
// message sent again was in before (its traceparent and tracestate): a
// dead letter's retry (RetryMsg), a replay into the stream (ResendHeader).
// Either is someone's command, days after the first delivery perhaps: the
// message joins the sender's trace (the sender writes its own
// traceparent, when it traces), and the worker's span for it links to the
// earlier trace (RetriedTrace), rather than growing a trace that began
// before.
const (
	HeaderRetryTraceParent = RetryHeaderPrefix + "Traceparent"
	HeaderRetryTraceState  = RetryHeaderPrefix + "Tracestate"
)

// DeadLetter is a message the worker gives up on, as it was delivered, and
// why: what the dead_letters row and the copy on deadletters.<source> are
// both made of.
type DeadLetter struct {
	Source     string      // "callbacks" or "commands": what the worker consumed it as
	MsgID      string      // the original's id: its Nats-Msg-Id, or stream:seq when it had none
	Subject    string      // the original subject, where a retry sends it back
	Stream     string      // the original stream
	Sequence   uint64      // the original stream sequence
	Deliveries uint64      // deliveries (or take-ups from the store) before giving up
	Header     nats.Header // the original's headers; nil for an input that waited in the store
	Data       []byte      // the original payload
	Reason     DeadReason
	Error      string // short human explanation (never a secret)
}

// deadCopyIDPrefix starts the Nats-Msg-Id of a dead letter's copy.
const deadCopyIDPrefix = "dl:"

// Msg builds the copy the worker publishes to DEADLETTERS: the original
// payload and headers (without the server's own, see RepublishHeader) on
// DeadLetterSubject(Source), with the Dl-* headers saying why and where it
// came from. Its Nats-Msg-Id is "dl:" + MsgID, so a move repeated after a
// failed Term is stored once. A retried message that dies again keeps its
// Rh-* headers on the copy, which names the dead letter it retried.
func (d DeadLetter) Msg() *nats.Msg {
	m := nats.NewMsg(DeadLetterSubject(d.Source))
	m.Data = d.Data
	m.Header = RepublishHeader(d.Header)
	m.Header.Set(HeaderMsgID, deadCopyIDPrefix+d.MsgID)
	m.Header.Set(HeaderDeadReason, string(d.Reason))
	m.Header.Set(HeaderDeadError, d.Error)
	m.Header.Set(HeaderDeadSubject, d.Subject)
	m.Header.Set(HeaderDeadStream, d.Stream)
	m.Header.Set(HeaderDeadSequence, strconv.FormatUint(d.Sequence, 10))
	m.Header.Set(HeaderDeadDeliveries, strconv.FormatUint(d.Deliveries, 10))
	return m
}

// StoredDeadLetter is what a retry needs of a dead_letters row
// (casestore.DeadLetter holds these among its columns).
type StoredDeadLetter struct {
	ID      int64               // the row's id, named by Rh-Retry-Of
	MsgID   string              // the original's id
	Subject string              // the original subject
	Header  map[string][]string // the headers stored with it
	Data    []byte
	// RetriedBy is the operator retrying it ("" leaves HeaderRetryBy out).
	RetriedBy string
}

// RetryMsg rebuilds the original message of a stored dead letter for
// re-publishing to its original subject: the stored payload and headers
// without the server's Nats-*, the dead letter's Dl-* and an earlier retry's
// Rh-* headers, plus this retry's Rh-Retry-Of, Rh-Original-Msg-Id and
// Rh-Retried-By. The stored trace headers move to Rh-Traceparent and
// Rh-Tracestate (an earlier retry's stay when there are none); the
// retrier adds its own (InjectTrace). Its Nats-Msg-Id is new (the
// original id, "-retry-" and random hex, or "dl-<id>-retry-…" without
// one), so the stream's duplicate window does not drop it; the worker's
// inbox keys on the payload's own id and still drops what it already
// applied.
func RetryMsg(d StoredDeadLetter) (*nats.Msg, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("retry id of dead letter %d: %w", d.ID, err)
	}
	orig := d.MsgID
	if orig == "" {
		orig = "dl-" + strconv.FormatInt(d.ID, 10)
	}
	m := nats.NewMsg(d.Subject)
	m.Data = d.Data
	m.Header = copyHeader(d.Header, ServerHeaderPrefix, DeadHeaderPrefix, RetryHeaderPrefix, HeaderTraceParent, HeaderTraceState)
	moveTrace(d.Header, m.Header)
	m.Header.Set(HeaderMsgID, orig+"-retry-"+hex.EncodeToString(b[:]))
	m.Header.Set(HeaderRetryOf, strconv.FormatInt(d.ID, 10))
	if d.MsgID != "" {
		m.Header.Set(HeaderRetryOriginalMsgID, d.MsgID)
	}
	if d.RetriedBy != "" {
		m.Header.Set(HeaderRetryBy, d.RetriedBy)
	}
	return m, nil
}

// ResendHeader returns a copy of a stored message's headers for sending
// it again as someone's command (a replay into the stream): as
// RepublishHeader, but its trace headers moved to HeaderRetryTraceParent
// and HeaderRetryTraceState (see there); the sender adds its own
// (InjectTrace).
func ResendHeader(h nats.Header) nats.Header {
	out := copyHeader(h, ServerHeaderPrefix, HeaderTraceParent, HeaderTraceState, HeaderRetryTraceParent, HeaderRetryTraceState)
	moveTrace(h, out)
	return out
}

// moveTrace writes into h the trace a stored message was in (its
// traceparent and tracestate) as HeaderRetryTraceParent and
// HeaderRetryTraceState; when it was in none (an untraced retry or replay
// stored it), the earlier trace it kept stays, so that the link is not
// lost.
func moveTrace(stored map[string][]string, h nats.Header) {
	parent, state := getFold(stored, HeaderTraceParent), getFold(stored, HeaderTraceState)
	if parent == "" {
		parent, state = getFold(stored, HeaderRetryTraceParent), getFold(stored, HeaderRetryTraceState)
	}
	if parent != "" {
		h.Set(HeaderRetryTraceParent, parent)
	}
	if state != "" {
		h.Set(HeaderRetryTraceState, state)
	}
}

// RepublishHeader returns a copy of a stored message's headers for
// publishing the same message again (a dead letter's copy; a replay uses
// ResendHeader): every header but the server's own Nats-* ones. Those describe one
// stored copy, not the message: the publisher sets the Nats-Msg-Id anew,
// and a Nats-Expected-* precondition held for the first publish only.
func RepublishHeader(h nats.Header) nats.Header {
	return copyHeader(h, ServerHeaderPrefix)
}

// getFold is h's first value of header name, whose stored name may differ
// from it in ASCII case; "" without one.
func getFold(h map[string][]string, name string) string {
	for k, vs := range h {
		if len(vs) > 0 && strings.EqualFold(k, name) {
			return vs[0]
		}
	}
	return ""
}

// copyHeader deep-copies h without the headers whose names start with one of
// the prefixes, ignoring ASCII case: names stored from the wire may not be in
// canonical form.
func copyHeader(h map[string][]string, drop ...string) nats.Header {
	out := make(nats.Header, len(h)+8)
	for k, vs := range h {
		if !slices.ContainsFunc(drop, func(p string) bool { return hasPrefixFold(k, p) }) {
			out[k] = slices.Clone(vs)
		}
	}
	return out
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
