// Package excerpt shortens text that comes from outside (platform answers,
// operator input, error chains) before it goes into an error, a log line, a
// record or a header: one rule for the whole product, so every cut looks the
// same and none splits a character.
package excerpt

import (
	"strings"
	"unicode/utf8"
)

// Ellipsis is the mark Of puts where it cut.
const Ellipsis = "…"

// Of returns s if it has at most n bytes, else its longest prefix of whole
// UTF-8 characters within n bytes followed by Ellipsis. Invalid UTF-8 is
// replaced by U+FFFD first, so the result is always valid text. n below 1
// counts as 1.
func Of(s string, n int) string {
	prefix, cut := Cut(strings.ToValidUTF8(s, "\uFFFD"), n)
	if cut {
		return prefix + Ellipsis
	}
	return prefix
}

// Cut is the cut Of makes, for a caller that puts its own mark or repairs
// invalid UTF-8 its own way (quoting it, say): s if it has at most n bytes,
// else its longest prefix that splits no character within n bytes, and
// whether it cut. It repairs nothing, and takes a []byte as well as a string
// so that a caller converts only the prefix it keeps. n below 1 counts as 1.
func Cut[T string | []byte](s T, n int) (prefix T, cut bool) {
	n = max(n, 1)
	if len(s) <= n {
		return s, false
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i], true
}

// Bytes is Of for a byte slice, with surrounding white space trimmed (a
// response body).
func Bytes(b []byte, n int) string {
	return Of(strings.TrimSpace(string(b)), n)
}

// Line makes a stored value safe inside one line of text (a table cell, a
// refusal naming who discarded what): control characters become spaces, an
// empty value is "-" so that a column never looks shifted, and a value longer
// than n bytes is cut by Of; n below 1 keeps it whole.
func Line(s string, n int) string {
	if s == "" {
		return "-"
	}
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if n > 0 {
		s = Of(s, n)
	}
	return s
}
