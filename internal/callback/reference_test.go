package callback_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strconv"
	"strings"

	"github.com/refundhub/refundhub/internal/callback"
)

// The reference: what Parse, DecodeOrderBody and DecodeRefundBody must do,
// written with encoding/json and the rules in their doc comments only. It
// shares no code with the hand-written scanner (this is package
// callback_test: it can reach exported names only), so that the
// differential tests compare two independent readings of the rules.
//
// The rules applied, each from Parse's doc comment unless noted:
//
//	R1  input that is empty or only JSON whitespace is empty_body
//	    (CodeEmptyBody: "no bytes at all"; Parse skips whitespace).
//	R2  the whole input is valid JSON as encoding/json's Valid says, and
//	    nests at most 512 deep; otherwise invalid_json.
//	R3  its top level is an object; otherwise invalid_envelope.
//	R4  keys match exactly (case-sensitive) after unescaping; unknown keys
//	    are ignored; of duplicate keys the last wins.
//	R5  messageType is a string; decoded (as encoding/json decodes it) it is
//	    not empty, at most MaxMessageTypeLen bytes, and holds no control
//	    character (a byte below 0x20, or 0x7f); otherwise invalid_message_type.
//	R6  messagePlatform is exactly the number 0 or 1 (written so: not 0.0,
//	    -0 or 1e0, which are other spellings); otherwise invalid_platform.
//	R7  timestamp is non-negative integer milliseconds that fit an int64,
//	    as a string of ASCII digits or as a JSON number written with digits
//	    only (no sign, fraction or exponent); otherwise invalid_timestamp.
//	R8  messageBody is a string whose decoded text is a JSON object (valid
//	    as R2, at most 512 deep); otherwise invalid_message_body.
//	R9  a well-formed envelope whose messageType is not known for its
//	    platform is parked unknown_type (Parse; TypeNames).
//	R10 a known type's body is decoded as encoding/json decodes it into
//	    OrderBody or RefundBody (the apiclient types keep their own
//	    UnmarshalJSON), except that keys match exactly (R4, decode.go's
//	    comment); a field that does not decode parks invalid_body.
//	R11 an order or price message without orderId parks missing_order_id;
//	    a refund message without refundId parks missing_refund_id, and
//	    then one without orderId missing_order_id (ParkReason, classify).
//	R12 the event's ID is ContentID's documented hash: the first 128 bits,
//	    in hex, of SHA-256 over "rh1" NUL platform NUL messageType NUL
//	    timestamp-in-decimal NUL messageBody.
//
// Which of several broken rules Parse reports is not part of the contract;
// the reference reports every one it finds, and the code Parse gives must be
// one of them.

const refMaxDepth = 512

// refResult is the reference's verdict on one input: the rules it breaks
// (none when accepted) and, when accepted, the event Parse must return
// (ParkDetail left empty: it is prose).
type refResult struct {
	codes []callback.Code
	ev    callback.Event
}

func (r refResult) rejects(c callback.Code) bool {
	for _, x := range r.codes {
		if x == c {
			return true
		}
	}
	return false
}

// refParse applies R1-R12 to raw with the given type table.
func refParse(names callback.TypeNames, raw []byte) refResult {
	if len(bytes.Trim(raw, " \t\r\n")) == 0 { // R1
		return refResult{codes: []callback.Code{callback.CodeEmptyBody}}
	}
	if !json.Valid(raw) || refDepth(raw) > refMaxDepth { // R2
		return refResult{codes: []callback.Code{callback.CodeInvalidJSON}}
	}
	var members map[string]json.RawMessage // R4: exact keys, last wins
	if bytes.Trim(raw, " \t\r\n")[0] != '{' || json.Unmarshal(raw, &members) != nil {
		return refResult{codes: []callback.Code{callback.CodeInvalidEnvelope}} // R3
	}
	var r refResult
	typ, typOK := refMessageType(members["messageType"])
	if !typOK {
		r.codes = append(r.codes, callback.CodeInvalidMessageType)
	}
	platform, platOK := refPlatform(members["messagePlatform"])
	if !platOK {
		r.codes = append(r.codes, callback.CodeInvalidPlatform)
	}
	ts, tsOK := refTimestamp(members["timestamp"])
	if !tsOK {
		r.codes = append(r.codes, callback.CodeInvalidTimestamp)
	}
	body, bodyOK := refMessageBody(members["messageBody"])
	if !bodyOK {
		r.codes = append(r.codes, callback.CodeInvalidMessageBody)
	}
	if len(r.codes) > 0 {
		return r
	}
	ev := callback.Event{Platform: platform, Type: typ, TimestampMS: ts, Body: body}
	kind, known := names[platform][typ]
	if !known { // R9
		ev.Park = callback.ParkUnknownType
	} else {
		ev.Kind = kind
		refClassify(&ev, kind, []byte(body))
	}
	ev.ID = refContentID(ev) // R12
	r.ev = ev
	return r
}

// refDepth is the deepest nesting of arrays and objects in a valid document.
func refDepth(doc []byte) int {
	dec := json.NewDecoder(bytes.NewReader(doc))
	depth, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return deepest
		}
		switch tok {
		case json.Delim('['), json.Delim('{'):
			depth++
			deepest = max(deepest, depth)
		case json.Delim(']'), json.Delim('}'):
			depth--
		}
	}
}

// refValue decodes a raw member as encoding/json does into an interface,
// numbers kept as written. ok is false when the member is absent.
func refValue(raw json.RawMessage) (v any, ok bool) {
	if raw == nil {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		panic("reference: a member of a valid document does not decode: " + err.Error())
	}
	return v, true
}

// refMessageType is R5.
func refMessageType(raw json.RawMessage) (string, bool) {
	v, _ := refValue(raw)
	s, isString := v.(string)
	if !isString || s == "" || len(s) > callback.MaxMessageTypeLen {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return "", false
		}
	}
	return s, true
}

// refPlatform is R6.
func refPlatform(raw json.RawMessage) (callback.Platform, bool) {
	v, _ := refValue(raw)
	switch v {
	case json.Number("0"):
		return callback.PlatformTaobao, true
	case json.Number("1"):
		return callback.Platform1688, true
	}
	return 0, false
}

// refTimestamp is R7.
func refTimestamp(raw json.RawMessage) (int64, bool) {
	v, _ := refValue(raw)
	var digits string
	switch v := v.(type) {
	case string:
		digits = v
	case json.Number:
		digits = string(v)
	default:
		return 0, false
	}
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	return n, err == nil
}

// refMessageBody is R8.
func refMessageBody(raw json.RawMessage) (string, bool) {
	v, _ := refValue(raw)
	s, isString := v.(string)
	if !isString || !refIsObject([]byte(s)) {
		return "", false
	}
	return s, true
}

// refIsObject reports whether doc is a JSON object as R2 and R3 read it.
func refIsObject(doc []byte) bool {
	trimmed := bytes.Trim(doc, " \t\r\n")
	return json.Valid(doc) && refDepth(doc) <= refMaxDepth && len(trimmed) > 0 && trimmed[0] == '{'
}

// refClassify is R10 and R11 for a known type.
func refClassify(ev *callback.Event, kind callback.Kind, body []byte) {
	switch kind {
	case callback.KindOrderStatus, callback.KindPriceModify:
		var b callback.OrderBody
		switch {
		case refDecodeExact(body, &b) != nil:
			ev.Park = callback.ParkInvalidBody
		case b.OrderID == "":
			ev.Park = callback.ParkMissingOrderID
		default:
			ev.Order = &b
			ev.OtherFields = refOtherFields(body, b)
		}
	case callback.KindRefund:
		var b callback.RefundBody
		switch {
		case refDecodeExact(body, &b) != nil:
			ev.Park = callback.ParkInvalidBody
		case b.RefundID == "":
			ev.Park = callback.ParkMissingRefundID
		case b.OrderID == "":
			ev.Park = callback.ParkMissingOrderID
		default:
			ev.Refund = &b
			ev.OtherFields = refOtherFields(body, b)
		}
	}
}

// refOtherFields is R12: the keys of an accepted body that are not exactly
// a JSON name of the typed body's fields, in order (repeats included), at
// most callback.MaxOtherFields; nil when there are none.
func refOtherFields(body []byte, typed any) []string {
	known := map[string]bool{}
	rt := reflect.TypeOf(typed)
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		known[name] = true
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if _, err := dec.Token(); err != nil { // {
		return nil
	}
	var out []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return out
		}
		key, _ := tok.(string)
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return out
		}
		if !known[key] && len(out) < callback.MaxOtherFields {
			out = append(out, key)
		}
	}
	return out
}

// refDecodeExact decodes the object body into *dst (a struct) as
// json.Unmarshal does, except that a member is used only when its key is
// exactly a field's JSON name (R4, R10). Members are applied in order, each
// by json.Unmarshal of a one-member object onto the same struct, so that
// duplicates and null behave as they do in one Unmarshal. The first error
// is returned; decoding goes on past it, as in encoding/json.
func refDecodeExact(body []byte, dst any) error {
	names := map[string]bool{}
	t := reflect.TypeOf(dst).Elem()
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		names[name] = true
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return errors.New("reference: body is not an object")
	}
	var first error
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return err
		}
		key := tok.(string)
		if !names[key] {
			continue
		}
		one, err := json.Marshal(map[string]json.RawMessage{key: val})
		if err != nil {
			return err
		}
		if err := json.Unmarshal(one, dst); err != nil && first == nil {
			first = err
		}
	}
	if _, err := dec.Token(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return first
}

// refContentID is R12.
func refContentID(ev callback.Event) string {
	msg := "rh1\x00" + strconv.Itoa(int(ev.Platform)) + "\x00" + ev.Type + "\x00" +
		strconv.FormatInt(ev.TimestampMS, 10) + "\x00" + ev.Body
	sum := sha256.Sum256([]byte(msg))
	return hex.EncodeToString(sum[:16])
}
