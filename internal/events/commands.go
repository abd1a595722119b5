package events

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Operator commands and dead letters live in two streams beside the callback
// stream:
//
//	commands.<platform>.<kind>.<case>   COMMANDS: refundctl -> worker (refundflow.Command JSON)
//	deadletters.<source>                DEADLETTERS: messages the worker gave up on, with Dl-* headers (deadletters.go)
//
// <kind> is the refundflow.InputKind (request_refund, report_shipment, cancel,
// send_message); <case> is the case as the command names it
// (refundflow.OrderKey, made a subject token by CaseToken), so that the
// worker can find the commands issued for a case before one it is about to
// apply with one look-up by subject (CommandCaseFilter); <source> is
// "callbacks" or "commands". Commands published before the <case> token
// existed have three tokens and are still consumed. The Nats-Msg-Id of a
// command is its refundflow.Command.ID, so a CLI retry is stored once.
const (
	SubjectCommands    = "commands"
	SubjectDeadLetters = "deadletters"

	DefaultCommandStreamName    = "COMMANDS"
	DefaultDeadLetterStreamName = "DEADLETTERS"
	// DefaultCommandMaxAge keeps commands for replay and audit well beyond any
	// worker outage.
	DefaultCommandMaxAge = 30 * 24 * time.Hour
	// DefaultDeadLetterMaxAge keeps dead letters long enough for an operator
	// to look at them after a holiday; the worker also records them in SQLite.
	DefaultDeadLetterMaxAge = 30 * 24 * time.Hour
	// DefaultCommandDuplicates is the window in which a re-published command
	// id is dropped by the server; the worker's inbox covers longer spans.
	DefaultCommandDuplicates = 10 * time.Minute
)

// Command headers, set by refundctl on what it publishes to COMMANDS. The
// dead-letter headers are in deadletters.go.
const (
	HeaderCommandKind   = "Cmd-Kind"     // refundflow.InputKind
	HeaderCommandIssuer = "Cmd-Operator" // who issued it
)

// CommandSubject is the subject of a command for a platform ("taobao", "1688")
// and kind, on the case caseKey names (refundflow.OrderKey); a command
// naming no case ("") gets no case token.
func CommandSubject(platform, kind, caseKey string) string {
	s := SubjectCommands + "." + platform + "." + kind
	if caseKey != "" {
		s += "." + CaseToken(caseKey)
	}
	return s
}

// CommandSubjectOfAnyCase is a command subject with its case token, if it
// has one, made a wildcard ("commands.taobao.cancel.case_12" is
// "commands.taobao.cancel.*"): the subject filter of its platform and kind
// on every case, for lists that group messages by subject. Other subjects
// are returned as they are.
func CommandSubjectOfAnyCase(subject string) string {
	toks := strings.Split(subject, ".")
	if len(toks) != 4 || toks[0] != SubjectCommands {
		return subject
	}
	return strings.Join(toks[:3], ".") + ".*"
}

// maxCaseToken bounds a case token: longer than any platform's order ids.
const maxCaseToken = 64

// CommandCaseFilter is the subject filter of every command published on
// the case caseKey names, whatever its platform and kind.
func CommandCaseFilter(caseKey string) string {
	return SubjectCommands + ".*.*." + CaseToken(caseKey)
}

// CaseToken makes a case key a single subject token: every byte other than
// an ASCII letter, digit, '-' or '_' becomes '_' ("taobao:123" is
// "taobao_123"), and only the first maxCaseToken bytes count, so that a
// subject stays short whatever a command holds. Two keys may share a
// token; whoever looks commands up by it checks each one's own key.
func CaseToken(caseKey string) string {
	b := []byte(caseKey[:min(len(caseKey), maxCaseToken)])
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "_"
	}
	return string(b)
}

// DeadLetterSubject is the dead-letter subject for a source stream's messages
// ("callbacks" or "commands").
func DeadLetterSubject(source string) string {
	return SubjectDeadLetters + "." + source
}

// WorkStreamsConfig names and sizes the command and dead-letter streams.
type WorkStreamsConfig struct {
	CommandStream    string
	DeadLetterStream string
	// LimitStream keeps the server's delivery limit advisories for the
	// worker's consumers (limits.go).
	LimitStream      string
	CommandMaxAge    time.Duration
	DeadLetterMaxAge time.Duration
	Replicas         int
}

// DefaultWorkStreamsConfig returns the documented defaults.
func DefaultWorkStreamsConfig() WorkStreamsConfig {
	return WorkStreamsConfig{
		CommandStream:    DefaultCommandStreamName,
		DeadLetterStream: DefaultDeadLetterStreamName,
		LimitStream:      DefaultLimitStreamName,
		CommandMaxAge:    DefaultCommandMaxAge,
		DeadLetterMaxAge: DefaultDeadLetterMaxAge,
		Replicas:         DefaultReplicas,
	}
}

// Validate checks names and limits.
func (c WorkStreamsConfig) Validate() error {
	for _, n := range []string{c.CommandStream, c.DeadLetterStream, c.LimitStream} {
		if err := (StreamConfig{Name: n, MaxAge: time.Hour, Duplicates: time.Minute, MaxBytes: 1, MaxMsgSize: 1, Replicas: 1}).Validate(); err != nil {
			return err
		}
	}
	if c.CommandStream == c.DeadLetterStream || c.LimitStream == c.CommandStream || c.LimitStream == c.DeadLetterStream {
		return errors.New("command, dead-letter and limit streams must differ")
	}
	if c.CommandMaxAge < DefaultCommandDuplicates || c.DeadLetterMaxAge <= 0 {
		return fmt.Errorf("stream max ages %s / %s: must be at least %s / positive", c.CommandMaxAge, c.DeadLetterMaxAge, DefaultCommandDuplicates)
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		return fmt.Errorf("stream replicas %d: must be 1 to 5", c.Replicas)
	}
	return nil
}

// EnsureWorkStreams creates or updates the command and dead-letter streams
// (file storage, limits retention); running it again changes nothing.
func EnsureWorkStreams(ctx context.Context, js jetstream.JetStream, c WorkStreamsConfig) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("ensure work streams: %w", err)
	}
	for _, sc := range []jetstream.StreamConfig{
		{
			Name:        c.CommandStream,
			Description: "operator commands for the refundhub worker",
			Subjects:    []string{SubjectCommands + ".>"},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Discard:     jetstream.DiscardNew, // never drop an acknowledged command to make room
			MaxAge:      c.CommandMaxAge,
			MaxBytes:    DefaultMaxBytes,
			MaxMsgSize:  64 << 10,
			MaxMsgs:     -1,
			Duplicates:  DefaultCommandDuplicates,
			Replicas:    c.Replicas,
		},
		{
			Name:        c.DeadLetterStream,
			Description: "messages the refundhub worker gave up on, with the reason in headers",
			Subjects:    []string{SubjectDeadLetters + ".>"},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Discard:     jetstream.DiscardOld,
			MaxAge:      c.DeadLetterMaxAge,
			MaxBytes:    DefaultMaxBytes,
			MaxMsgSize:  DefaultMaxMsgSize + 64<<10,
			MaxMsgs:     -1,
			Duplicates:  DefaultDuplicates,
			Replicas:    c.Replicas,
		},
	} {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("ensure stream %s: %w", sc.Name, err)
		}
	}
	return nil
}
