// Package logtest reads back, in a command's end-to-end tests, what the
// command logged through envconfig's one logging set-up with LOG_FORMAT=json,
// and fails the test where a line breaks that format: a plain line among the
// JSON ones, a duplicated key (an attribute named like slog's own "msg"), or
// a duration written as a bare number of nanoseconds.
package logtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
)

// Line is one decoded log line.
type Line map[string]any

// Msg is the line's message.
func (l Line) Msg() string { s, _ := l["msg"].(string); return s }

// Level is the line's level (INFO, WARN, …).
func (l Line) Level() string { s, _ := l["level"].(string); return s }

// durationKey names the attributes that hold a duration. A number there is
// a time.Duration that missed envconfig's ReplaceAttr (a logger not made by
// LogConfig.Logger); counts such as "ms" are named otherwise.
var durationKey = regexp.MustCompile(`^(timeout|after|wait|waited|retry_in|delay|interval|elapsed|duration|ttl|grace|max_age|duplicates)$|_(timeout|wait|delay|interval|age|ttl|in)$`)

// Parse decodes every non-empty line of logs, failing tb for each line that
// is not one JSON object with time, level and msg, that repeats a key, or
// that writes a duration as a number.
func Parse(tb testing.TB, logs string) []Line {
	tb.Helper()
	var lines []Line
	for i, raw := range strings.Split(logs, "\n") {
		if strings.TrimSpace(raw) == "" {
			continue
		}
		if err := noDuplicateKeys([]byte(raw)); err != nil {
			tb.Errorf("log line %d is not one JSON object with distinct keys (%v):\n%s", i+1, err, raw)
			continue
		}
		var l Line
		if err := json.Unmarshal([]byte(raw), &l); err != nil {
			tb.Errorf("log line %d is not JSON (%v):\n%s", i+1, err, raw)
			continue
		}
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := l[k]; !ok {
				tb.Errorf("log line %d has no %q:\n%s", i+1, k, raw)
			}
		}
		for k, v := range l {
			if _, num := v.(float64); num && durationKey.MatchString(k) {
				tb.Errorf("log line %d writes the duration %s as a bare number (want text such as \"1.5s\"):\n%s", i+1, k, raw)
			}
		}
		lines = append(lines, l)
	}
	return lines
}

// Find returns the first line whose message is msg, or nil.
func Find(lines []Line, msg string) Line {
	for _, l := range lines {
		if l.Msg() == msg {
			return l
		}
	}
	return nil
}

// Quiet fails tb for every line at WARN or above: what a clean start and
// stop must not log.
func Quiet(tb testing.TB, lines []Line) {
	tb.Helper()
	for _, l := range lines {
		if lv := l.Level(); lv != "INFO" && lv != "DEBUG" {
			b, _ := json.Marshal(l)
			tb.Errorf("a clean run logged at %s: %s", lv, b)
		}
	}
}

// noDuplicateKeys checks that raw is exactly one JSON object in which no
// object repeats a key (encoding/json would keep the last silently).
func noDuplicateKeys(raw []byte) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errors.New("not an object")
	}
	if err := object(dec); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("more than one value")
	}
	return nil
}

// object reads the rest of an object whose '{' was read.
func object(dec *json.Decoder) error {
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		if seen[key] {
			return fmt.Errorf("key %q twice", key)
		}
		seen[key] = true
		if err := value(dec); err != nil {
			return err
		}
	}
	_, err := dec.Token() // '}'
	return err
}

// value reads one value, descending into objects and arrays.
func value(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		return object(dec)
	case json.Delim('['):
		for dec.More() {
			if err := value(dec); err != nil {
				return err
			}
		}
		_, err := dec.Token() // ']'
		return err
	}
	return nil
}
