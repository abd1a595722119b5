// Redaction of the signature and nonce of an attempt from the errors it
// returns, so no error text carries them.

package apiclient

import (
	"strings"
)

// scrubber returns a function that removes the secret, the signature and the
// nonce from text that came back from the server before it is put into an
// error or a log line.
func (c *Client) scrubber(signature, nonce string) func(string) string {
	var pairs []string
	for _, s := range []string{c.secret, signature, nonce} {
		if len(s) >= 4 {
			pairs = append(pairs, s, "[REDACTED]")
		}
	}
	if len(pairs) == 0 {
		return func(s string) string { return s }
	}
	r := strings.NewReplacer(pairs...)
	return r.Replace
}

// redactedError keeps a cause for errors.Is/As while replacing its text.
type redactedError struct {
	msg   string
	cause error
}

// Error returns the redacted text.
func (e *redactedError) Error() string { return e.msg }

// Unwrap returns the original error for errors.Is/As.
func (e *redactedError) Unwrap() error { return e.cause }

func scrubErr(err error, scrub func(string) string) error {
	if s := scrub(err.Error()); s != err.Error() {
		return &redactedError{msg: s, cause: err}
	}
	return err
}
