package events

import (
	"slices"
	"strings"
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
)

// deadReasons lists every reason, in the order operators see them documented.
var deadReasons = []DeadReason{DeadUndecodable, DeadInvalidCommand, DeadPermanentError, DeadUnknownCase, DeadMaxDeliveries}

// DeadReasons returns every dead-letter reason; a CLI validates a filter
// against it and lists it in the error.
func DeadReasons() []DeadReason { return slices.Clone(deadReasons) }

// Valid reports whether r is one of DeadReasons.
func (r DeadReason) Valid() bool { return slices.Contains(deadReasons, r) }

// legacyDeadReasons are values older workers stored for a reason: they wrote
// "permanent" where DeadPermanentError is meant. dead_letters rows are never
// pruned, so a filter must still find those.
var legacyDeadReasons = map[DeadReason][]string{DeadPermanentError: {"permanent"}}

// StoredValues returns every value a stored dead letter with reason r may
// carry: r itself and what older workers wrote for it.
func (r DeadReason) StoredValues() []string {
	return append([]string{string(r)}, legacyDeadReasons[r]...)
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
const (
	DeadHeaderPrefix  = "Dl-"
	RetryHeaderPrefix = "Rh-"
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

// Retry headers, set by `refundctl dead-letters retry` on the republished
// message. HeaderRetryOf is the dead letter's id; HeaderRetryOriginalMsgID
// keeps the original Nats-Msg-Id, which the retry replaces so that the
// stream's duplicate window does not drop it.
const (
	HeaderRetryOf            = RetryHeaderPrefix + "Retry-Of"
	HeaderRetryOriginalMsgID = RetryHeaderPrefix + "Original-Msg-Id"
)
