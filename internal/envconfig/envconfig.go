// Package envconfig reads a command's settings from an injected getenv
// through one table of documented variables, the same table that prints the
// command's -h. It collects every error, so a misconfigured process reports
// all its problems at once, and it never calls os.Getenv itself: commands pass
// their getenv, tests pass a map. Settings that several commands read (the
// callback stream's) are documented and read here once, for all of them.
package envconfig

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Var documents one environment variable. An empty Default prints as "none".
type Var struct {
	Name, Default, Help string
}

// Usage prints the variables as the "Environment:" part of a command's -h.
func Usage(w io.Writer, vars []Var) {
	fmt.Fprintln(w, "Environment:")
	for _, v := range vars {
		def := v.Default
		if def == "" {
			def = "none"
		}
		fmt.Fprintf(w, "  %s (default: %s)\n        %s\n", v.Name, def, v.Help)
	}
}

// Reader reads variables through getenv, falling back to the documented
// default of a variable that is unset or blank, and collects parse errors.
// Error messages quote the value read; never use it for secrets (read those
// with getenv directly).
type Reader struct {
	defaults map[string]string
	getenv   func(string) string
	errs     []error
}

// NewReader returns a Reader over the documented vars.
func NewReader(vars []Var, getenv func(string) string) *Reader {
	d := make(map[string]string, len(vars))
	for _, v := range vars {
		d[v.Name] = v.Default
	}
	return &Reader{defaults: d, getenv: getenv}
}

// String returns the trimmed value, or the default when it is blank.
func (r *Reader) String(name string) string {
	if v := strings.TrimSpace(r.getenv(name)); v != "" {
		return v
	}
	return r.defaults[name]
}

// Duration parses a Go duration within [lo, hi].
func (r *Reader) Duration(name string, lo, hi time.Duration) time.Duration {
	d, err := time.ParseDuration(r.String(name))
	if err != nil || d < lo || d > hi {
		r.Fail(fmt.Errorf("%s=%q: want a duration from %s to %s (e.g. 30s)", name, r.String(name), lo, hi))
	}
	return d
}

// Float parses a decimal number within [lo, hi], in unit (as "calls per
// second") for the error.
func (r *Reader) Float(name string, lo, hi float64, unit string) float64 {
	f, err := strconv.ParseFloat(r.String(name), 64)
	if err != nil || !(f >= lo && f <= hi) { // NaN fails too
		r.Fail(fmt.Errorf("%s=%q: want %s from %g to %g", name, r.String(name), unit, lo, hi))
	}
	return f
}

// Int parses a decimal integer within [lo, hi].
func (r *Reader) Int(name string, lo, hi int) int {
	n, err := strconv.Atoi(r.String(name))
	if err != nil || n < lo || n > hi {
		r.Fail(fmt.Errorf("%s=%q: want an integer from %d to %d", name, r.String(name), lo, hi))
	}
	return n
}

// Int64 parses a decimal integer within [lo, hi].
func (r *Reader) Int64(name string, lo, hi int64) int64 {
	n, err := strconv.ParseInt(r.String(name), 10, 64)
	if err != nil || n < lo || n > hi {
		r.Fail(fmt.Errorf("%s=%q: want an integer from %d to %d", name, r.String(name), lo, hi))
	}
	return n
}

// LogLevel parses debug, info, warn or error.
func (r *Reader) LogLevel(name string) slog.Level {
	switch strings.ToLower(r.String(name)) {
	case "debug":
		return slog.LevelDebug
	case "info":
		return slog.LevelInfo
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	r.Fail(fmt.Errorf("%s=%q: want debug, info, warn or error", name, r.String(name)))
	return slog.LevelInfo
}

// LogVars are the logging variables every long-running command reads, one
// set-up for all of them (Logger).
func LogVars() []Var {
	return []Var{
		V("LOG_FORMAT", "json", "json or text (logfmt)"),
		V("LOG_LEVEL", "info", "debug, info, warn or error"),
	}
}

// LogConfig is how a process logs: read once with Reader.Log, turned into
// the logger with Logger.
type LogConfig struct {
	JSON  bool
	Level slog.Level
}

// Log reads LOG_FORMAT and LOG_LEVEL (LogVars).
func (r *Reader) Log() LogConfig {
	c := LogConfig{Level: r.LogLevel("LOG_LEVEL")}
	switch strings.ToLower(r.String("LOG_FORMAT")) {
	case "json":
		c.JSON = true
	case "text":
	default:
		r.Fail(fmt.Errorf("LOG_FORMAT=%q: want json or text", r.String("LOG_FORMAT")))
	}
	return c
}

// Logger is the one logging set-up of every command: the same handler
// options everywhere, and durations written as text ("1.5s") in either
// format, so two processes' logs read alike.
func (c LogConfig) Logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.Level, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Value.Kind() == slog.KindDuration {
			a.Value = slog.StringValue(a.Value.Duration().String())
		}
		return a
	}}
	if c.JSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Fail records a problem found by the caller's own checks.
func (r *Reader) Fail(err error) {
	if err != nil {
		r.errs = append(r.errs, err)
	}
}

// Err returns every problem recorded, joined, or nil.
func (r *Reader) Err() error { return errors.Join(r.errs...) }

// V is shorthand for a Var, so a command's table reads as one line per variable.
func V(name, def, help string) Var { return Var{Name: name, Default: def, Help: help} }
