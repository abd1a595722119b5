package apiclient

import "regexp"

// The platform's code as APIError.Error and HTTPError.Error write it.
var (
	apiCodeText    = regexp.MustCompile(`platform error code (-?\d+)(?: "(?:[^"\\]|\\.)*")?(?:, nested (\S+))?`)
	httpCodeText   = regexp.MustCompile(`http status \d{3}[^,(]*, code (-?\d+)`)
	httpStatusText = regexp.MustCompile(`http status (\d{3})`)
)

// ErrorCodeIn returns the platform's error code that an error's text names
// as APIError and HTTPError write it: the envelope code ("4001"), the nested
// code of a nested failure ("isSuccess=false"), or "http 502" for an HTTP
// failure without an envelope; "" when the text names none. A dead letter
// keeps only its error's text (the worker stores the chain as a string), and
// the console groups dead letters by this code; it lives here, beside the
// formats it reads, so that the two change together (TestErrorCodeIn builds
// its texts with Error).
func ErrorCodeIn(text string) string {
	if m := apiCodeText.FindStringSubmatch(text); m != nil {
		if m[2] != "" {
			return m[2]
		}
		return m[1]
	}
	if m := httpCodeText.FindStringSubmatch(text); m != nil {
		return m[1]
	}
	if m := httpStatusText.FindStringSubmatch(text); m != nil {
		return "http " + m[1]
	}
	return ""
}
