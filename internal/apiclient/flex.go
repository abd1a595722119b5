package apiclient

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/refundhub/refundhub/internal/excerpt"
)

// The platform's documentation declares several fields with drifting types
// (reference §1 and §4.2): developId is a string on one page and an integer on
// another, refundStatus is a string in render/cancel and an integer in the v2
// query, ids are strings in v1 objects and integers in v2 ones. The types below
// decode every observed form without failing.

// FlexString decodes a JSON string, number, boolean or null into its text form.
// It marshals as a JSON string.
type FlexString string

// UnmarshalJSON accepts a string, a number (kept digit for digit), a boolean or null.
func (f *FlexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || bytes.Equal(b, []byte("null")):
		*f = ""
		return nil
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = FlexString(s)
		return nil
	case bytes.Equal(b, []byte("true")) || bytes.Equal(b, []byte("false")):
		*f = FlexString(b)
		return nil
	default:
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("flexible string: %w", err)
		}
		*f = FlexString(n.String())
		return nil
	}
}

// String returns the text form.
func (f FlexString) String() string { return string(f) }

// FlexInt64 decodes a JSON integer, a string holding an integer, or null (0).
// Ids such as the 19-digit 1688 orderId arrive both ways; int64 holds them exactly.
// It marshals as a JSON number.
type FlexInt64 int64

// UnmarshalJSON accepts an integer, a numeric string, an empty string or null.
func (f *FlexInt64) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		*f = 0
		return nil
	}
	s := string(b)
	if b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if s == "" {
			*f = 0
			return nil
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("flexible integer %q: %w", excerpt.Of(s, 40), err)
	}
	*f = FlexInt64(n)
	return nil
}

// Amount is money in minor units (fen for CNY). 1688 amounts are fen upstream
// (reference §5.2); the callback examples are fen too (10000 = 9500 + 500). The
// unit of Taobao's refundFee/price fields is UNKNOWN (reference §9 Q9): this
// product assumes fen and, to stay safe if that is wrong, only ever submits
// amounts taken from, or checked against, the platform's own rendered bounds.
//
// Amount decodes integers, whole decimals ("12.0", 1e3), numeric strings and
// null (0), and marshals as a JSON integer. An amount with a fractional part
// is an error, never rounded: a fraction of a fen means the unit is not what
// this product assumes (yuan instead of fen, say), and guessing would move
// money by a factor of 100.
type Amount int64

// UnmarshalJSON accepts a whole number, a numeric string or null.
func (a *Amount) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		*a = 0
		return nil
	}
	s := string(b)
	if b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if s == "" {
			*a = 0
			return nil
		}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		*a = Amount(n)
		return nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > 1e15 {
		return fmt.Errorf("amount %q: not a finite number", excerpt.Of(s, 40))
	}
	if v != math.Trunc(v) {
		return fmt.Errorf("amount %q: has a fraction of the minor unit (fen); refusing to round", excerpt.Of(s, 40))
	}
	*a = Amount(v)
	return nil
}

// FlexInt decodes a JSON integer, a numeric string or null (0). The envelope's
// code is documented as "integer | null".
type FlexInt int

// UnmarshalJSON accepts an integer, a numeric string or null.
func (f *FlexInt) UnmarshalJSON(b []byte) error {
	var n FlexInt64
	if err := n.UnmarshalJSON(b); err != nil {
		return err
	}
	if int64(int(n)) != int64(n) {
		return fmt.Errorf("flexible int %d out of range", n)
	}
	*f = FlexInt(n)
	return nil
}
