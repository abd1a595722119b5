package callback

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"github.com/refundhub/refundhub/internal/excerpt"
	"github.com/refundhub/refundhub/internal/platform"
)

// Code is a stable machine code for a rejected envelope. It appears in the
// receiver's error bodies and metric labels, so values never change once
// released.
type Code string

// Rejection codes. Every one of them means "the bytes are not a platform
// envelope"; the receiver answers 400 for all of them.
const (
	CodeEmptyBody          Code = "empty_body"           // no bytes at all
	CodeInvalidJSON        Code = "invalid_json"         // not JSON, or truncated JSON
	CodeInvalidEnvelope    Code = "invalid_envelope"     // JSON, but not an object (array, string, null, …)
	CodeInvalidMessageType Code = "invalid_message_type" // messageType missing, not a string, empty, too long or with control characters
	CodeInvalidMessageBody Code = "invalid_message_body" // messageBody missing, not a string, or not a string holding a JSON object
	CodeInvalidPlatform    Code = "invalid_platform"     // messagePlatform missing or not exactly the number 0 or 1
	CodeInvalidTimestamp   Code = "invalid_timestamp"    // timestamp missing or not non-negative integer milliseconds (string or number)
)

// Error is the one error type of this package: a rejection with a stable Code
// and a human message. The message never quotes more than a short prefix of
// the input.
type Error struct {
	Code    Code
	Message string
}

// Error implements error.
func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

func reject(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ParkReason says why a well-formed envelope was parked instead of accepted.
// Like Code, the values are stable: they are stored in a message header and
// used as a metric label.
type ParkReason string

// Park reasons. The empty reason means the event was accepted.
const (
	ParkUnknownType     ParkReason = "unknown_type"      // messageType not in TypeNames for the platform
	ParkInvalidBody     ParkReason = "invalid_body"      // body is an object but does not decode into the type's body (e.g. orderId is an object)
	ParkMissingOrderID  ParkReason = "missing_order_id"  // order or refund message without orderId
	ParkMissingRefundID ParkReason = "missing_refund_id" // refund message without refundId
)

// MaxMessageTypeLen bounds messageType; the rule is the platform package's.
const MaxMessageTypeLen = platform.MaxMessageTypeLen

// Event is a validated envelope. Kind, Order and Refund are set for known
// types; Park is non-empty when the event must go to the parked subject.
type Event struct {
	Platform Platform
	Type     string // messageType as sent
	Kind     Kind   // "" when the type is unknown
	// TimestampMS is the envelope's timestamp in milliseconds since the epoch.
	TimestampMS int64
	// Body is the decoded messageBody: the text of a JSON object.
	Body string
	// Order is set for KindOrderStatus and KindPriceModify when the body decoded.
	Order *OrderBody
	// Refund is set for KindRefund when the body decoded.
	Refund *RefundBody
	// Park is the reason this event is parked, "" if it is accepted.
	Park ParkReason
	// ParkDetail is a short human explanation of Park.
	ParkDetail string
	// ID is the content hash (see ContentID), used as Nats-Msg-Id.
	ID string
	// OtherFields are body fields of a known type that the decoder does
	// not read, in body order, at most MaxOtherFields: the receiver counts
	// those the platform profile does not know either.
	OtherFields []string
}

// Parked reports whether the event goes to the parked subject.
func (e *Event) Parked() bool { return e.Park != "" }

// ContentID returns the dedupe id of an envelope: the first 128 bits, in hex,
// of SHA-256 over a normalised form of the four envelope fields
//
//	"rh1" NUL platform NUL messageType NUL timestamp-as-decimal-ms NUL messageBody
//
// Normalised fields rather than raw bytes so that the same push re-serialised
// (other key order, whitespace, timestamp as number instead of string) still
// dedupes; byte-identical retries trivially hash the same. The body is hashed
// as the decoded string, byte for byte: two bodies that differ only in
// whitespace are different pushes as far as the platform's text goes, and
// treating them as distinct is the safe side (one more hint for the worker).
func ContentID(p Platform, messageType string, timestampMS int64, body string) string {
	// One contiguous buffer and sha256.Sum256: no hash object to allocate
	// (on the stack for ordinary pushes).
	var stack [2048]byte
	b := append(stack[:0], "rh1\x00"...)
	b = strconv.AppendInt(b, int64(p), 10)
	b = append(b, 0)
	b = append(b, messageType...)
	b = append(b, 0)
	b = strconv.AppendInt(b, timestampMS, 10)
	b = append(b, 0)
	b = append(b, body...)
	sum := sha256.Sum256(b)
	var out [32]byte
	hex.Encode(out[:], sum[:16])
	return string(out[:])
}

// Parser validates envelopes against a set of known message types.
// It is safe for concurrent use.
type Parser struct {
	names TypeNames
	canon map[string]string // every known name, for allocation-free interning
}

// NewParser returns a Parser for names. Every known type name must be a valid
// NATS subject token made of letters, digits, '_' and '-' (accepted events are
// published under a subject containing it) and every kind must be one of the
// Kind constants.
func NewParser(names TypeNames) (*Parser, error) {
	cp := make(TypeNames, len(names))
	for p, m := range names {
		if p != PlatformTaobao && p != Platform1688 {
			return nil, fmt.Errorf("type names: unknown platform %d", int(p))
		}
		inner := make(map[string]Kind, len(m))
		for name, kind := range m {
			if !platform.ValidMessageType(name) {
				return nil, fmt.Errorf("type names: %s type %q: want 1-%d letters, digits, '_' or '-'", p, name, MaxMessageTypeLen)
			}
			if !slices.Contains(platform.Kinds(), kind) {
				return nil, fmt.Errorf("type names: %s type %q: unknown kind %q (want %s, %s or %s)", p, name, kind, KindOrderStatus, KindPriceModify, KindRefund)
			}
			inner[name] = kind
		}
		cp[p] = inner
	}
	canon := map[string]string{}
	for _, m := range cp {
		for name := range m {
			canon[name] = name
		}
	}
	return &Parser{names: cp, canon: canon}, nil
}

// Parse validates raw as a platform envelope (reference §3.2) and returns the
// event. A *Error means the bytes are not an envelope (the receiver answers
// 400). A well-formed envelope always yields an Event, possibly parked: an
// unknown type or a body without the ids its type needs is not the sender's
// syntax error, and rejecting it would only make the platform retry.
//
// Rules: the whole body is valid JSON (RFC 8259, as encoding/json's Valid,
// nesting at most 512 deep) and its top level is an object; messageType is a
// non-empty string without control characters, at most MaxMessageTypeLen
// bytes; messagePlatform is exactly the number 0 or 1; messageBody is a
// string holding a JSON object; timestamp is non-negative integer
// milliseconds, as a string of digits or a JSON integer. Keys match exactly
// (case-sensitive); unknown fields are ignored; of duplicate keys the last
// wins.
func (p *Parser) Parse(raw []byte) (Event, error) {
	var ev Event
	empty := true
	for _, c := range raw {
		if !isWS(c) {
			empty = false
			break
		}
	}
	if empty {
		return ev, reject(CodeEmptyBody, "request body is empty")
	}
	// One pass validates the document, finds the four fields and decodes a
	// string messageBody.
	var env envelope
	isObj, err := scanEnvelope(raw, &env)
	if err != nil {
		return ev, reject(CodeInvalidJSON, "request body is not valid JSON (broken or truncated)")
	}
	if !isObj {
		return ev, reject(CodeInvalidEnvelope, "envelope must be a JSON object, got %s", jsonKind(firstNonWS(raw)))
	}
	typRaw, bodyRaw, platRaw, tsRaw := env.typ, env.bodyRaw, env.plat, env.ts

	// messageType
	if len(typRaw) == 0 {
		return ev, reject(CodeInvalidMessageType, "messageType is required")
	}
	if typRaw[0] != '"' {
		return ev, reject(CodeInvalidMessageType, "messageType must be a string, got %s", jsonKind(typRaw[0]))
	}
	typ := unquote(typRaw[1 : len(typRaw)-1])
	if len(typ) == 0 {
		return ev, reject(CodeInvalidMessageType, "messageType must not be empty")
	}
	if len(typ) > MaxMessageTypeLen {
		return ev, reject(CodeInvalidMessageType, "messageType is longer than %d bytes", MaxMessageTypeLen)
	}
	for _, c := range typ {
		if c < 0x20 || c == 0x7f {
			return ev, reject(CodeInvalidMessageType, "messageType contains a control character")
		}
	}

	// messagePlatform: exactly 0 or 1, as a JSON number.
	switch string(platRaw) {
	case "0":
		ev.Platform = PlatformTaobao
	case "1":
		ev.Platform = Platform1688
	case "":
		return ev, reject(CodeInvalidPlatform, "messagePlatform is required")
	default:
		return ev, reject(CodeInvalidPlatform, "messagePlatform must be the number 0 (Taobao) or 1 (1688), got %s", short(platRaw))
	}

	// timestamp
	ts, err := parseTimestamp(tsRaw)
	if err != nil {
		return ev, err
	}

	// messageBody: a string holding a JSON object.
	if len(bodyRaw) == 0 {
		return ev, reject(CodeInvalidMessageBody, "messageBody is required")
	}
	if bodyRaw[0] != '"' {
		return ev, reject(CodeInvalidMessageBody, "messageBody must be a string holding a JSON object, got %s", jsonKind(bodyRaw[0]))
	}
	// env.body was made for this event and is never written again, so the
	// string can share its bytes (as strings.Builder does): one allocation
	// for the body instead of two.
	body := env.body
	if len(body) > 0 {
		ev.Body = unsafe.String(unsafe.SliceData(body), len(body))
	}
	ev.Type = knownOrCopy(p, ev.Platform, typ)
	ev.TimestampMS = ts
	kind, known := p.names[ev.Platform][ev.Type]
	if known {
		// The typed decoder validates the body in the same pass.
		if err := p.classify(&ev, kind, body); err != nil {
			return Event{}, err
		}
	} else {
		if err := checkBody(body); err != nil {
			return Event{}, err
		}
		ev.Park, ev.ParkDetail = ParkUnknownType, "messageType is not a known "+ev.Platform.String()+" type"
	}
	ev.ID = ContentID(ev.Platform, ev.Type, ts, ev.Body)
	return ev, nil
}

// checkBody rejects a messageBody that is not a JSON object.
func checkBody(body []byte) error {
	isObj, err := scanDoc(body, nil)
	if err != nil {
		return reject(CodeInvalidMessageBody, "messageBody is not a JSON document")
	}
	if !isObj {
		return reject(CodeInvalidMessageBody, "messageBody must hold a JSON object, got %s", jsonKind(firstNonWS(body)))
	}
	return nil
}

// bodyErr turns a typed decoder's error into a rejection when the body
// itself is broken, and reports false for field errors (parked).
func bodyErr(body []byte, err error) (error, bool) {
	if errors.Is(err, errBodySyntax) || errors.Is(err, errBodyNotObject) {
		return checkBody(body), true
	}
	return nil, false
}

// knownOrCopy returns the configured name when typ is a known name (no
// allocation) and a copy otherwise.
func knownOrCopy(p *Parser, _ Platform, typ []byte) string {
	if c, ok := p.canon[string(typ)]; ok {
		return c
	}
	return string(typ)
}

func firstNonWS(b []byte) byte {
	for _, c := range b {
		if !isWS(c) {
			return c
		}
	}
	return 0
}

// classify decodes a known type's body into its typed form and checks the
// ids it needs; a body that is not a JSON object is rejected, one whose
// fields do not fit or lack the ids is parked.
func (p *Parser) classify(ev *Event, kind Kind, body []byte) error {
	ev.Kind = kind
	defer func() {
		if ev.Park != "" {
			ev.OtherFields = nil // only accepted bodies report them
		}
	}()
	t := text{b: body, s: ev.Body}
	switch kind {
	case KindOrderStatus, KindPriceModify:
		b, err := decodeOrder(t, &ev.OtherFields)
		if err != nil {
			if rej, ok := bodyErr(body, err); ok {
				return rej
			}
			ev.Park, ev.ParkDetail = ParkInvalidBody, "body does not decode as an order message: "+shortErr(err)
			return nil
		}
		if b.OrderID == "" {
			ev.Park, ev.ParkDetail = ParkMissingOrderID, "order message without orderId"
			return nil
		}
		ev.Order = &b
	case KindRefund:
		b, err := decodeRefund(t, &ev.OtherFields)
		if err != nil {
			if rej, ok := bodyErr(body, err); ok {
				return rej
			}
			ev.Park, ev.ParkDetail = ParkInvalidBody, "body does not decode as a refund message: "+shortErr(err)
			return nil
		}
		if b.RefundID == "" {
			ev.Park, ev.ParkDetail = ParkMissingRefundID, "refund message without refundId"
			return nil
		}
		if b.OrderID == "" {
			ev.Park, ev.ParkDetail = ParkMissingOrderID, "refund message without orderId"
			return nil
		}
		ev.Refund = &b
	}
	return nil
}

func parseTimestamp(raw json.RawMessage) (int64, error) {
	if len(raw) == 0 {
		return 0, reject(CodeInvalidTimestamp, "timestamp is required")
	}
	digits := raw
	if raw[0] == '"' {
		digits = unquote(raw[1 : len(raw)-1])
	}
	// No bound on the number of digits: leading zeros are still a string
	// of digits, and ParseInt below refuses a value that does not fit.
	if len(digits) == 0 {
		return 0, reject(CodeInvalidTimestamp, "timestamp must be milliseconds as a string or integer, got %s", short(raw))
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, reject(CodeInvalidTimestamp, "timestamp must be milliseconds as a string or integer, got %s", short(raw))
		}
	}
	n, err := strconv.ParseInt(string(digits), 10, 64)
	if err != nil {
		return 0, reject(CodeInvalidTimestamp, "timestamp is out of range")
	}
	return n, nil
}

func jsonKind(c byte) string {
	switch c {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

// short quotes at most 24 bytes of a raw JSON value for an error message,
// with excerpt's mark after the closing quote when it cut. It stays a local
// helper because it quotes: the cut is excerpt's (whole characters only),
// but invalid bytes keep strconv.Quote's \x escapes rather than Of's U+FFFD,
// and the mark sits outside the quotes.
func short(raw []byte) string {
	prefix, cut := excerpt.Cut(raw, 24)
	q := strconv.Quote(string(prefix))
	if cut {
		q += excerpt.Ellipsis
	}
	return q
}

// shortErr renders err for ParkDetail: at most 120 bytes, control
// characters replaced (the detail travels in a message header). It stays a
// local helper because a header needs more than excerpt.Of gives: control
// characters become spaces, and invalid UTF-8 becomes "?" as it always has
// (the cut is excerpt's, so it never splits a character).
func shortErr(err error) string {
	prefix, cut := excerpt.Cut(err.Error(), 120)
	if cut {
		prefix += excerpt.Ellipsis
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(prefix, "?"))
}
