package sandbox

import (
	"bytes"
	"crypto/md5"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/refundhub/refundhub/internal/excerpt"
	"github.com/refundhub/refundhub/internal/platform"
)

// The sandbox's own reading of the documented wire format (reference §1-§2
// and the seed pages): headers, envelope, amounts, nullable fields and the
// signature. Nothing here comes from the client: a client that drifts from
// the documented contract, or from the profile, fails against the sandbox
// instead of agreeing with itself. Every guessed fact (codes, units, names,
// signing order) is read from the platform profile.

// Header names of a signed request. They are documented (DOC-DEVMAN's
// system-parameter table), so they are not in the profile.
const (
	headerAccessKey = "access-key"
	headerTimestamp = "timestamp"
	headerNonce     = "nonce-str"
	headerUserID    = "user-id"
	headerSignature = "signature"
)

// developID is the developId every envelope carries (the documented example:
// a 19-digit number as a string).
const developID = "1021090911993463110"

// apiError is a failed API call: the class of the failure (the profile gives
// its code) and a message.
type apiError struct {
	Class platform.ErrorClass
	Msg   string
}

func errf(class platform.ErrorClass, format string, args ...any) *apiError {
	return &apiError{Class: class, Msg: fmt.Sprintf(format, args...)}
}

// Short names for the classes the handlers use most.
const (
	classMalformed = platform.ClassMalformedRequest
	classMissing   = platform.ClassMissingField
	classInvalid   = platform.ClassInvalidField
	classNotFound  = platform.ClassNotFound
	classIllegal   = platform.ClassIllegalState
	classDuplicate = platform.ClassDuplicateRefund
	classInternal  = platform.ClassInternal
)

// code is the envelope code the sandbox answers a class with.
func (s *Sandbox) code(c platform.ErrorClass) int { return s.prof.Code(c) }

// writeEnvelope writes {requestId, code, developId, msg, data}. A failure
// carries data null.
func (s *Sandbox) writeEnvelope(w http.ResponseWriter, status int, data any, e *apiError) {
	code, msg, raw := s.prof.Envelope.SuccessCode, s.prof.Envelope.SuccessMsg, json.RawMessage("null")
	if e != nil {
		code, msg = s.code(e.Class), e.Msg
	} else if data != nil {
		b, err := json.Marshal(data)
		if err != nil {
			s.log.Error("sandbox: encode response", "err", err)
			code, msg = s.code(classInternal), "internal error"
		} else {
			raw = b
		}
	}
	var dev any = developID
	if s.cfg.NumericDevelopID {
		dev = json.Number(developID) // the documented drift: some pages declare developId an integer
	}
	b, _ := json.Marshal(struct { // cannot fail: strings, an int and valid raw JSON
		RequestID string          `json:"requestId"`
		Code      int             `json:"code"`
		DevelopID any             `json:"developId"`
		Msg       string          `json:"msg"`
		Data      json.RawMessage `json:"data"`
	}{s.randHex(32), code, dev, msg, raw})
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// errorStatus is the HTTP status of an envelope that reports a failure.
func (s *Sandbox) errorStatus() int { return s.prof.Envelope.ErrorHTTPStatus }

// money is an amount held in fen, written in the platform's unit: an
// integer of fen, or yuan as a decimal with two places (amounts.* in the
// profile).
type money struct {
	fen  int64
	yuan bool
}

// MarshalJSON writes 1234 (fen) or 12.34 (yuan).
func (m money) MarshalJSON() ([]byte, error) {
	if m.yuan {
		return []byte(platform.FenToYuan(m.fen)), nil
	}
	return strconv.AppendInt(nil, m.fen, 10), nil
}

// tbMoney and abMoney write an amount in Taobao's and 1688's unit.
func (s *Sandbox) tbMoney(fen int64) money {
	return money{fen, s.prof.AmountUnit(true) == platform.UnitYuan}
}

func (s *Sandbox) abMoney(fen int64) money {
	return money{fen, s.prof.AmountUnit(false) == platform.UnitYuan}
}

// amountIn is an amount in a request body, kept as the number's text until
// the platform's unit says how to read it. Only a JSON number is accepted.
type amountIn struct{ text string }

// UnmarshalJSON keeps a number's text; null leaves it unset.
func (a *amountIn) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		a.text = ""
		return nil
	}
	if len(b) == 0 || b[0] == '"' {
		return errors.New("amount: want a JSON number")
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("amount: %w", err)
	}
	a.text = n.String()
	return nil
}

// fen reads an amount in the platform's unit: whole fen, or yuan with at
// most two decimals. Anything else is invalid, never rounded.
func (s *Sandbox) fen(a amountIn, taobao bool, field string) (int64, *apiError) {
	if s.prof.AmountUnit(taobao) == platform.UnitYuan {
		f, err := platform.YuanToFen(a.text)
		if err != nil {
			return 0, errf(classInvalid, "%s: %v", field, err)
		}
		return f, nil
	}
	r, ok := new(big.Rat).SetString(a.text)
	if !ok || !r.IsInt() || !r.Num().IsInt64() {
		return 0, errf(classInvalid, "%s %s 不合法 (want whole fen)", field, excerpt.Of(a.text, 30))
	}
	return r.Num().Int64(), nil
}

// nullable helpers: an unknown value goes on the wire as null (the seed
// pages declare these fields "type | null").

// str is s, or null when s is empty.
func str(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// ptr is a pointer to v, for a known value of a nullable field.
func ptr[T any](v T) *T { return &v }

// timeOrNull writes t as the platform does, or null for the zero time.
func (s *Sandbox) timeOrNull(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	return ptr(s.prof.FormatTime(t))
}

// fmtTime writes t as the platform does, "" for the zero time.
func (s *Sandbox) fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return s.prof.FormatTime(t)
}

// authenticate checks the signed headers (reference §2) in order: presence,
// access key, timestamp window, signature.
func (s *Sandbox) authenticate(r *http.Request) *apiError {
	h := r.Header
	key, ts, sig, uid := h.Get(headerAccessKey), h.Get(headerTimestamp), h.Get(headerSignature), h.Get(headerUserID)
	var missing []string
	for _, kv := range [][2]string{{headerAccessKey, key}, {headerTimestamp, ts}, {headerUserID, uid}, {headerSignature, sig}} {
		if kv[1] == "" {
			missing = append(missing, kv[0])
		}
	}
	if len(missing) > 0 {
		return errf(platform.ClassAuthMissing, "缺少请求头 (missing headers): %s", strings.Join(missing, ", "))
	}
	if !constantEqual(key, s.cfg.AccessKey) {
		return errf(platform.ClassAuthUnknownKey, "access-key 不存在 (unknown access key)")
	}
	t, ok := parseTimestamp(ts)
	if !ok {
		return errf(platform.ClassAuthExpiredTimestamp, "timestamp 格式错误 (want %s)", s.timestampWant())
	}
	window := s.prof.SignatureWindow()
	if d := s.now().Sub(t); d > window || d < -window {
		return errf(platform.ClassAuthExpiredTimestamp, "timestamp 已过期 (outside the ±%s window)", window)
	}
	if !constantEqual(sig, s.signature(key, ts, h.Get(headerNonce))) {
		return errf(platform.ClassAuthBadSignature, "签名错误 (bad signature)")
	}
	return nil
}

// constantEqual compares a credential without leaking where it differs.
func constantEqual(got, want string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// signature is what a request signed with these values must carry: the
// profile's parts concatenated in its order (an absent nonce is ""), hashed
// (md5, the only hash the profile allows) and hex encoded in its letter case.
func (s *Sandbox) signature(key, ts, nonce string) string {
	var b strings.Builder
	for _, part := range s.prof.Signature.Parts {
		switch part {
		case platform.PartAccessKey:
			b.WriteString(key)
		case platform.PartTimestamp:
			b.WriteString(ts)
		case platform.PartNonce:
			b.WriteString(nonce)
		case platform.PartSecret:
			b.WriteString(s.cfg.AccessSecret)
		}
	}
	sum := md5.Sum([]byte(b.String()))
	out := hex.EncodeToString(sum[:])
	if s.prof.Signature.LetterCase == "upper" {
		out = strings.ToUpper(out)
	}
	return out
}

// timestampWant describes the accepted timestamps, the profile's unit first.
// Both units are accepted whatever the profile says: the reference
// recommends it, as whether the platform normalises them is UNKNOWN.
func (s *Sandbox) timestampWant() string {
	if s.prof.Signature.TimestampUnit == "s" {
		return "10-digit seconds or 13-digit milliseconds"
	}
	return "13-digit milliseconds or 10-digit seconds"
}

// parseTimestamp accepts 10-digit seconds and 13-digit milliseconds.
func parseTimestamp(ts string) (time.Time, bool) {
	if len(ts) != 10 && len(ts) != 13 {
		return time.Time{}, false
	}
	for _, c := range ts {
		if c < '0' || c > '9' {
			return time.Time{}, false
		}
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	if len(ts) == 10 {
		return time.Unix(n, 0), true
	}
	return time.UnixMilli(n), true
}

// readBody reads at most maxJSONBody bytes.
func readBody(r *http.Request) ([]byte, *apiError) {
	if r.Body == nil {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxJSONBody+1))
	if err != nil {
		return nil, errf(classMalformed, "read body: %v", err)
	}
	if len(b) > maxJSONBody {
		return nil, errf(classInvalid, "请求体过大 (body exceeds %d bytes)", maxJSONBody)
	}
	return b, nil
}

// decodeJSON decodes a JSON object body into v (one of the sandbox's wire
// structs) and checks that every required field is present, not null and
// not an empty string. It returns the fields present.
func decodeJSON(body []byte, v any, required ...string) (map[string]json.RawMessage, *apiError) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, errf(classMalformed, "请求体为空 (empty body; want a JSON object)")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return nil, errf(classMalformed, "请求体不是合法的 JSON 对象 (malformed JSON)")
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				return nil, errf(classMalformed, "字段类型错误 (field %q: wrong type)", te.Field)
			}
			return nil, errf(classMalformed, "字段类型错误 (wrong field type): %s", excerpt.Of(err.Error(), 120))
		}
	}
	var missing []string
	for _, k := range required {
		raw, ok := fields[k]
		raw = bytes.TrimSpace(raw)
		if !ok || bytes.Equal(raw, []byte("null")) || bytes.Equal(raw, []byte(`""`)) {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return nil, errf(classMissing, "缺少必填参数 (missing required fields): %s", strings.Join(missing, ", "))
	}
	return fields, nil
}

// field decodes one field of a body decoded by decodeJSON into dst; an
// absent or null field leaves dst alone.
func field(fields map[string]json.RawMessage, name string, dst any) *apiError {
	raw, ok := fields[name]
	if !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return errf(classMalformed, "字段类型错误 (field %q: wrong type)", name)
	}
	return nil
}

// orderedObject is a JSON object whose keys keep the order they were added
// in: callback bodies list their fields in the profile's order.
type orderedObject struct {
	keys []string
	vals []any
}

func (o *orderedObject) add(k string, v any) {
	o.keys = append(o.keys, k)
	o.vals = append(o.vals, v)
}

// MarshalJSON writes the object in insertion order.
func (o orderedObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		vb, err := json.Marshal(o.vals[i])
		if err != nil {
			return nil, err
		}
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}
