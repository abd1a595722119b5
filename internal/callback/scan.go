package callback

import (
	"encoding/binary"
	"errors"
	"unicode/utf16"
	"unicode/utf8"
)

// A small validating JSON scanner for the hot path. encoding/json validates a
// document once per Unmarshal and again inside every custom unmarshaler, and
// the envelope needs only four top-level fields; one pass over the bytes
// that validates RFC 8259 syntax and records where those fields are is
// several times cheaper (BenchmarkParse against BenchmarkParseStd, and
// BenchmarkOrderBody against BenchmarkOrderBodyStd; figures in
// docs/mutation-testing.md). It accepts exactly what encoding/json's json.Valid
// accepts, except that nesting deeper than maxDepth is rejected;
// FuzzParseMatchesReference holds it to that.

const maxDepth = 512

var errSyntax = errors.New("invalid JSON")

type scanner struct {
	data  []byte
	i     int
	depth int
}

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (s *scanner) ws() {
	for s.i < len(s.data) && isWS(s.data[s.i]) {
		s.i++
	}
}

// value validates one JSON value starting at s.i (after whitespace).
func (s *scanner) value() error {
	s.ws()
	if s.i >= len(s.data) {
		return errSyntax
	}
	switch c := s.data[s.i]; {
	case c == '{':
		return s.object(nil)
	case c == '[':
		return s.array()
	case c == '"':
		_, err := s.str()
		return err
	case c == 't':
		return s.lit("true")
	case c == 'f':
		return s.lit("false")
	case c == 'n':
		return s.lit("null")
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	default:
		return errSyntax
	}
}

func (s *scanner) lit(l string) error {
	if len(s.data)-s.i < len(l) || string(s.data[s.i:s.i+len(l)]) != l {
		return errSyntax
	}
	s.i += len(l)
	return nil
}

func (s *scanner) digits() int {
	n := 0
	for s.i < len(s.data) && s.data[s.i] >= '0' && s.data[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

func (s *scanner) number() error {
	if s.data[s.i] == '-' {
		s.i++
	}
	if s.i >= len(s.data) {
		return errSyntax
	}
	if s.data[s.i] == '0' {
		s.i++
	} else if s.digits() == 0 {
		return errSyntax
	}
	if s.i < len(s.data) && s.data[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			return errSyntax
		}
	}
	if s.i < len(s.data) && (s.data[s.i] == 'e' || s.data[s.i] == 'E') {
		s.i++
		if s.i < len(s.data) && (s.data[s.i] == '+' || s.data[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			return errSyntax
		}
	}
	return nil
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// plain marks the bytes a string literal can contain without a closer look:
// everything except '"', '\\' and control characters.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// plain8 reports whether none of the eight bytes in x is '"', '\\' or a
// control character (the classic "has zero byte" bit trick: a byte b < n
// with b < 0x80 sets bit 7 of (b - n) &^ b).
func plain8(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	below := func(v uint64, n uint64) uint64 { return (v - ones*n) &^ v & highs }
	return below(x, 0x20)|below(x^(ones*'"'), 1)|below(x^(ones*'\\'), 1) == 0
}

// str validates a string literal at s.i and reports whether it has escapes.
func (s *scanner) str() (escaped bool, err error) {
	s.i++ // opening quote
	for s.i < len(s.data) {
		// Eight bytes at a time while none of them needs a closer look.
		for s.i+8 <= len(s.data) && plain8(binary.LittleEndian.Uint64(s.data[s.i:])) {
			s.i += 8
		}
		for s.i < len(s.data) && plain[s.data[s.i]] {
			s.i++
		}
		if s.i >= len(s.data) {
			break
		}
		c := s.data[s.i]
		switch {
		case c == '"':
			s.i++
			return escaped, nil
		case c == '\\':
			escaped = true
			if s.i+1 >= len(s.data) {
				return escaped, errSyntax
			}
			switch s.data[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.data) || !isHex(s.data[s.i+2]) || !isHex(s.data[s.i+3]) || !isHex(s.data[s.i+4]) || !isHex(s.data[s.i+5]) {
					return escaped, errSyntax
				}
				s.i += 6
			default:
				return escaped, errSyntax
			}
		case c < 0x20:
			return escaped, errSyntax
		default:
			s.i++
		}
	}
	return escaped, errSyntax
}

func (s *scanner) array() error {
	if s.depth++; s.depth > maxDepth {
		return errSyntax
	}
	s.i++ // [
	s.ws()
	if s.i < len(s.data) && s.data[s.i] == ']' {
		s.i++
		s.depth--
		return nil
	}
	for {
		if err := s.value(); err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.data) {
			return errSyntax
		}
		switch s.data[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			s.depth--
			return nil
		default:
			return errSyntax
		}
	}
}

// field is called for each member of an object: the raw key (without
// quotes; escaped reports escapes in it) and the raw value.
type field func(key []byte, escaped bool, val []byte)

func (s *scanner) object(fn field) error {
	if s.depth++; s.depth > maxDepth {
		return errSyntax
	}
	s.i++ // {
	s.ws()
	if s.i < len(s.data) && s.data[s.i] == '}' {
		s.i++
		s.depth--
		return nil
	}
	for {
		s.ws()
		if s.i >= len(s.data) || s.data[s.i] != '"' {
			return errSyntax
		}
		ks := s.i
		esc, err := s.str()
		if err != nil {
			return err
		}
		key := s.data[ks+1 : s.i-1]
		s.ws()
		if s.i >= len(s.data) || s.data[s.i] != ':' {
			return errSyntax
		}
		s.i++
		s.ws()
		vs := s.i
		if err := s.value(); err != nil {
			return err
		}
		if fn != nil {
			fn(key, esc, s.data[vs:s.i])
		}
		s.ws()
		if s.i >= len(s.data) {
			return errSyntax
		}
		switch s.data[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			s.depth--
			return nil
		default:
			return errSyntax
		}
	}
}

// scanDoc validates data as one JSON document. When it is an object, fn is
// called for its top-level members and isObject is true.
func scanDoc(data []byte, fn field) (isObject bool, err error) {
	s := scanner{data: data}
	s.ws()
	if s.i >= len(data) {
		return false, errSyntax
	}
	if data[s.i] == '{' {
		isObject = true
		err = s.object(fn)
	} else {
		err = s.value()
	}
	if err != nil {
		return isObject, err
	}
	s.ws()
	if s.i != len(data) {
		return isObject, errSyntax
	}
	return isObject, nil
}

// unquote decodes the inside of a validated JSON string literal (without
// its quotes) the way encoding/json does: escapes resolved, invalid UTF-8 and
// unpaired surrogates replaced by U+FFFD. The result may alias in.
func unquote(in []byte) []byte {
	clean := true
	for _, c := range in {
		if c == '\\' || c >= utf8.RuneSelf {
			clean = false
			break
		}
	}
	if clean || (utf8.Valid(in) && !containsByte(in, '\\')) {
		return in
	}
	out := make([]byte, 0, len(in))
	for i := 0; i < len(in); {
		// Copy the run of plain ASCII up to the next escape or multi-byte rune.
		j := i
		for j < len(in) && in[j] != '\\' && in[j] < utf8.RuneSelf {
			j++
		}
		out = append(out, in[i:j]...)
		if i = j; i >= len(in) {
			break
		}
		c := in[i]
		switch {
		case c == '\\':
			e := in[i+1]
			i += 2
			switch e {
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r := hex4(in[i:])
				i += 4
				if utf16.IsSurrogate(r) {
					if i+6 <= len(in) && in[i] == '\\' && in[i+1] == 'u' {
						if r2 := utf16.DecodeRune(r, hex4(in[i+2:])); r2 != utf8.RuneError {
							i += 6
							out = utf8.AppendRune(out, r2)
							continue
						}
					}
					r = utf8.RuneError
				}
				out = utf8.AppendRune(out, r)
			default: // '"', '\\', '/'
				out = append(out, e)
			}
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(in[i:])
			if r == utf8.RuneError && size == 1 {
				out = utf8.AppendRune(out, utf8.RuneError)
			} else {
				out = append(out, in[i:i+size]...)
			}
			i += size
		}
	}
	return out
}

func containsByte(b []byte, c byte) bool {
	for _, x := range b {
		if x == c {
			return true
		}
	}
	return false
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		default:
			c = c - 'A' + 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// plainASCII marks the bytes a string literal copies through unchanged:
// printable ASCII except '"' and '\\'. Control characters, quotes,
// backslashes and non-ASCII bytes need a closer look.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// strAppend validates the string literal at s.i exactly like str and
// appends its decoded contents to dst exactly like unquote, in one pass.
// The receiver uses it for messageBody, the one long string of an envelope,
// which would otherwise be walked twice (validate, then decode).
func (s *scanner) strAppend(dst []byte) ([]byte, error) {
	data := s.data
	i := s.i + 1 // opening quote
	for i < len(data) {
		c := data[i]
		if plainASCII[c] {
			dst = append(dst, c)
			i++
			continue
		}
		switch {
		case c == '"':
			s.i = i + 1
			return dst, nil
		case c == '\\':
			if i+1 >= len(data) {
				return dst, errSyntax
			}
			switch e := data[i+1]; e {
			case '"', '\\', '/':
				dst = append(dst, e)
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				if i+6 > len(data) || !isHex(data[i+2]) || !isHex(data[i+3]) || !isHex(data[i+4]) || !isHex(data[i+5]) {
					return dst, errSyntax
				}
				r := hex4(data[i+2:])
				i += 6
				if utf16.IsSurrogate(r) {
					// A valid pair only if the next six bytes are a valid
					// \uXXXX escape completing it; otherwise U+FFFD and the
					// next escape is read on its own.
					if i+6 <= len(data) && data[i] == '\\' && data[i+1] == 'u' &&
						isHex(data[i+2]) && isHex(data[i+3]) && isHex(data[i+4]) && isHex(data[i+5]) {
						if r2 := utf16.DecodeRune(r, hex4(data[i+2:])); r2 != utf8.RuneError {
							i += 6
							dst = utf8.AppendRune(dst, r2)
							continue
						}
					}
					r = utf8.RuneError
				}
				dst = utf8.AppendRune(dst, r)
				continue
			default:
				return dst, errSyntax
			}
			i += 2
		case c < 0x20:
			return dst, errSyntax
		default: // non-ASCII: valid UTF-8 kept, each invalid byte U+FFFD
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size == 1 {
				dst = utf8.AppendRune(dst, utf8.RuneError)
			} else {
				dst = append(dst, data[i:i+size]...)
			}
			i += size
		}
	}
	return dst, errSyntax
}

// envelope holds the raw top-level values Parse needs (nil when absent) and,
// when the last messageBody is a string, its decoded text in body.
type envelope struct {
	typ, plat, ts, bodyRaw []byte
	body                   []byte
}

// scanEnvelope is scanDoc for Parse: it validates data as one JSON document
// and, when it is an object, records the four envelope fields (of duplicate
// keys the last wins), decoding a string messageBody into env.body.
func scanEnvelope(data []byte, env *envelope) (isObject bool, err error) {
	var bodyErr error
	isObject, err = scanDoc(data, func(key []byte, escaped bool, val []byte) {
		if escaped {
			key = unquote(key)
		}
		switch string(key) {
		case "messageType":
			env.typ = val
		case "messageBody":
			env.bodyRaw = val
			if len(val) > 0 && val[0] == '"' {
				if env.body == nil {
					// Escapes only shrink the text; only invalid UTF-8 (one
					// byte becomes three) can outgrow this, and append copes.
					env.body = make([]byte, 0, len(val))
				}
				lit := scanner{data: val}
				env.body, bodyErr = lit.strAppend(env.body[:0])
			}
		case "messagePlatform":
			env.plat = val
		case "timestamp":
			env.ts = val
		}
	})
	if err == nil {
		err = bodyErr
	}
	return isObject, err
}
