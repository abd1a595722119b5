package events

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// NotUpMessage is what a process logs, at warn, while it waits for a NATS
// server it has not reached yet. The receiver and the worker both say it in
// these words (see NotUp), rather than with the client's error for a
// connection that has no server ("nats: outbound buffer limit exceeded"),
// which reads like an overload instead of "start NATS".
const NotUpMessage = "NATS is not up yet; waiting for it"

// NotUp reports whether a failed JetStream call on js failed because its
// connection has no server right now (not yet connected, or reconnecting),
// rather than because of the stream or the request itself. A caller that
// retries then logs NotUpMessage instead of the error.
func NotUp(js jetstream.JetStream) bool {
	nc := js.Conn()
	return nc != nil && !nc.IsConnected()
}

// RedactURLs returns a NATS_URL (one URL or several, comma-separated) fit
// for a log line: each URL without its user info (user, password or token;
// RedactURL). A URL without a scheme gets nats://, as the client reads it.
func RedactURLs(servers string) string {
	var out []string
	for s := range strings.SplitSeq(servers, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !strings.Contains(s, "://") {
			s = "nats://" + s
		}
		out = append(out, RedactURL(s))
	}
	return strings.Join(out, ",")
}

// RedactURL returns one URL fit for a message or a log line: without its
// user info. A URL with an "@" that does not parse, or parses with the "@"
// outside its user info (a token or password holding "/", "?" or "#" ends
// the authority early, and the secret lands in the path, query or
// fragment), keeps only what follows its last "@": where the secret ends
// cannot be told otherwise. One without an "@" that does not parse shows as
// <unparsable URL>.
func RedactURL(raw string) string {
	s := strings.TrimSpace(raw)
	u, err := url.Parse(s)
	if at := strings.LastIndex(s, "@"); at >= 0 {
		if err == nil && u.User != nil && !strings.Contains(u.Host+u.Path+u.RawQuery+u.Fragment, "@") {
			u.User = nil
			return u.String()
		}
		prefix := ""
		if scheme, _, ok := strings.Cut(s, "://"); ok {
			prefix = scheme + "://"
		}
		return prefix + "…@" + s[at+1:]
	}
	if err != nil || u.Host == "" {
		return "<unparsable URL>"
	}
	return u.String()
}

// ConnectError is err, a failure of nats.Connect on servers (a NATS_URL),
// fit for a message or a log line: it names the servers redacted
// (RedactURLs). A URL that does not parse is not quoted: the client's
// parse error quotes the URL up to where it failed, password included (a
// generated password often holds "/", "#" or "%"), so only the fact is
// kept.
func ConnectError(servers string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("connect to NATS at %s: a URL does not parse (not shown: it may hold a password)", RedactURLs(servers))
	}
	return fmt.Errorf("connect to NATS at %s: %w", RedactURLs(servers), err)
}
