// Package excerpt shortens text that comes from outside (platform answers,
// operator input, error chains) before it goes into an error, a log line, a
// record or a header: one rule for the whole product, so every cut looks the
// same and none splits a character.
package excerpt

import (
	"strings"
	"unicode/utf8"
)

// Of returns s if it has at most n bytes, else its longest prefix of whole
// UTF-8 characters within n bytes followed by "…". Invalid UTF-8 is replaced
// by U+FFFD first, so the result is always valid text. n below 1 counts as 1.
func Of(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	n = max(n, 1)
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// Bytes is Of for a byte slice, with surrounding white space trimmed (a
// response body).
func Bytes(b []byte, n int) string {
	return Of(strings.TrimSpace(string(b)), n)
}
