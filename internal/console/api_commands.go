package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/refundhub/refundhub/internal/excerpt"
	"github.com/refundhub/refundhub/internal/opcommands"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// maxCommandBody bounds a POSTed command: the COMMANDS stream takes at
// most 64 KiB per message.
const maxCommandBody = 64 << 10

// consoleFields are the command fields the console sets itself: who
// issued it is the authenticated account, and when is the server's clock.
var consoleFields = []string{"operator", "issuedAt"}

// commandAnswer is the answer of POST /api/v1/commands and GET
// /api/v1/commands/{id}: the command as stored, where JetStream stored it,
// and the worker's verdict (pending when it gave none within the wait;
// then Poll is where to ask again).
type commandAnswer struct {
	ID        string              `json:"id"`
	Subject   string              `json:"subject,omitempty"`
	Stream    string              `json:"stream,omitempty"`
	Sequence  uint64              `json:"seq,omitempty"`
	Duplicate bool                `json:"duplicate,omitempty"`
	Command   *refundflow.Command `json:"command,omitempty"`
	Verdict   opcommands.Verdict  `json:"verdict"`
	Poll      string              `json:"poll,omitempty"`
}

// commandPath is where a command's verdict is read.
func commandPath(id string) string { return "/api/v1/commands/" + id }

// handleAPICommand is POST /api/v1/commands: one operator command as JSON
// (refundflow.Command's fields but operator and issuedAt, which are the
// console's). It is checked as refundctl checks its flags
// (opcommands.CompleteTarget for a case named by id alone, then
// opcommands.Check), issued through the path the forms use (issue), and
// answered 200 with the verdict, or 202 with the id and where to poll when
// the worker gave none within ?wait= (at most, and by default, the
// console's VerdictWait). An id makes a retry idempotent: the same command
// again gets the first one's answer and stores nothing; a different one is
// 409 conflict. Bad input publishes nothing.
func (s *Server) handleAPICommand(c echo.Context) error {
	if !who(c).CanAct() {
		return errNotOperator
	}
	wait, err := s.parseWait(c.QueryParam("wait"))
	if err != nil {
		return err
	}
	cmd, err := decodeAPICommand(c.Request().Body)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if cmd.ID == "" {
		if cmd.ID, err = opcommands.NewID(); err != nil {
			return err
		}
	}
	cmd.Operator, cmd.IssuedAt = who(c).Name, s.now().UTC().Truncate(time.Millisecond)
	if err := s.completeTarget(c, &cmd); err != nil {
		return err
	}
	if err := opcommands.Check(cmd); err != nil {
		return &Error{Code: CodeInvalidCommand, Message: apiMessage(err)}
	}
	res, err := s.issue(ctx, who(c), cmd, wait, true)
	if err != nil {
		return err
	}
	return s.answerCommand(c, res.Command.ID, &res.Command, res.Ack, res.Verdict)
}

// completeTarget names the case's platform and order for a command that
// names its case by id alone, as refundctl --case does.
func (s *Server) completeTarget(c echo.Context, cmd *refundflow.Command) error {
	err := opcommands.CompleteTarget(c.Request().Context(), s.store, cmd)
	var te *opcommands.TargetError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &te):
		return &Error{Code: CodeInvalidCommand, Message: te.Error()}
	case errors.Is(err, opcommands.ErrUnknownCase):
		return &Error{Code: CodeNotFound, Message: fmt.Sprintf("caseId %d: no such case (give platform too to send it to the worker anyway)", cmd.CaseID)}
	}
	return err
}

// answerCommand writes a command's answer: 200 with a verdict, 202 while
// it is pending.
func (s *Server) answerCommand(c echo.Context, id string, cmd *refundflow.Command, ack opcommands.Ack, v opcommands.Verdict) error {
	out := commandAnswer{ID: id, Subject: ack.Subject, Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate,
		Command: cmd, Verdict: v}
	if v.Verdict == opcommands.VerdictPending {
		out.Poll = commandPath(id)
		return c.JSON(http.StatusAccepted, out)
	}
	return c.JSON(http.StatusOK, out)
}

// commandIDSyntax is the id rule of refundflow.Command.Validate, checked
// here so that a bad id in a URL is answered as such.
var commandIDSyntax = regexp.MustCompile(`^[A-Za-z0-9_.:-]{8,64}$`)

// handleAPICommandVerdict is GET /api/v1/commands/{id}: the worker's
// verdict on a command (opcommands.Lookup: applied on the case a request
// opened, once the verdict itself is pruned), 200, or 202 with verdict
// pending while there is none (also for an id never published: the
// console cannot tell the two apart once a command has left its hands).
func (s *Server) handleAPICommandVerdict(c echo.Context) error {
	id := c.Param("id")
	if !commandIDSyntax.MatchString(id) {
		return invalidArg("id: 8 to 64 characters of A-Z a-z 0-9 _ . : -")
	}
	where, stream, seq := c.QueryParam("where"), c.QueryParam("stream"), c.QueryParam("seq")
	switch {
	case where != "" && where != "1":
		return &Error{Code: CodeInvalidArgument, Param: "where", Message: "where: 1 to say where JetStream has a command without a verdict, or leave it out"}
	case (stream != "" || seq != "") && where != "1":
		return &Error{Code: CodeInvalidArgument, Param: "where", Message: "stream and seq go with where=1"}
	case (stream == "") != (seq == ""):
		return &Error{Code: CodeInvalidArgument, Param: "seq", Message: "stream and seq: both (where the command was stored, as its answer said), or neither"}
	case seq != "" && !positiveSeq(seq):
		return &Error{Code: CodeInvalidArgument, Param: "seq", Message: "seq: a stream sequence, a positive integer"}
	}
	v, err := opcommands.Lookup(c.Request().Context(), s.store, id)
	if err != nil {
		return err
	}
	if where == "1" && v.Verdict == opcommands.VerdictPending && v.Reason == "" {
		// Asked for (a poll's last look, not each poll: the look reads
		// the command stream), and only where the store says nothing.
		w := ""
		if stream != "" {
			w = s.storedWhere(c.Request().Context(), id, stream, seq) // one message read: where its answer said
		} else {
			w = s.locatedWhere(c.Request().Context(), id)
		}
		if w != "" {
			v.Code, v.Reason = opcommands.CodeUndecided, w
		}
	}
	return s.answerCommand(c, id, nil, opcommands.Ack{}, v)
}

// parseWait reads ?wait=: how long to wait for the verdict, 0 to not wait,
// at most (and by default) VerdictWait.
func (s *Server) parseWait(v string) (time.Duration, error) {
	if v == "" {
		return s.cfg.VerdictWait, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, invalidArg(fmt.Sprintf("wait %q: a duration such as 2s, 0 to not wait", excerpt.Of(v, 20)))
	}
	return min(d, s.cfg.VerdictWait), nil
}

// decodeAPICommand reads one command object, strictly: a field the
// command does not have, or one the console sets itself, is refused
// naming it.
func decodeAPICommand(body io.Reader) (refundflow.Command, error) {
	b, err := io.ReadAll(io.LimitReader(body, maxCommandBody+1))
	if err != nil {
		return refundflow.Command{}, &Error{Code: CodeBadJSON, Message: "the body could not be read"}
	}
	if len(b) > maxCommandBody {
		return refundflow.Command{}, &Error{Code: CodeBadJSON, Message: fmt.Sprintf("the body is larger than %d KiB", maxCommandBody>>10)}
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(b, &keys); err != nil {
		return refundflow.Command{}, &Error{Code: CodeBadJSON, Message: "the body is not a JSON object: " + jsonProblem(err)}
	}
	for _, f := range consoleFields {
		if _, ok := keys[f]; ok {
			return refundflow.Command{}, &Error{Code: CodeUnknownField,
				Message: f + ": set by the console (the authenticated account, the server's clock); leave it out"}
		}
	}
	if f := unknownField(b, reflect.TypeFor[refundflow.Command](), ""); f != "" {
		return refundflow.Command{}, &Error{Code: CodeUnknownField, Message: excerpt.Of(f, 64) + ": not a field of a command (docs/console.md lists them)"}
	}
	var cmd refundflow.Command
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cmd); err != nil {
		return refundflow.Command{}, &Error{Code: CodeBadJSON, Message: jsonProblem(err)}
	}
	if dec.More() {
		return refundflow.Command{}, &Error{Code: CodeBadJSON, Message: "one JSON object, nothing after it"}
	}
	return cmd, nil
}

// unknownField returns the path of the first key of the JSON object b
// that is not a field of typ, spelled exactly: encoding/json matches keys
// case-insensitively, so "caseID" would set caseId unseen. Nested
// documents (request, shipment, …) are checked the same way. "" when all
// are known, or b is not an object (the decoder says what is wrong).
func unknownField(b []byte, typ reflect.Type, prefix string) string {
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	var obj map[string]json.RawMessage
	if typ.Kind() != reflect.Struct || json.Unmarshal(b, &obj) != nil {
		return ""
	}
	fields := map[string]reflect.Type{}
	for f := range typ.Fields() {
		if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" && name != "-" {
			fields[name] = f.Type
		}
	}
	for _, key := range slices.Sorted(maps.Keys(obj)) {
		ft, ok := fields[key]
		if !ok {
			return prefix + key
		}
		if f := unknownField(obj[key], ft, prefix+key+"."); f != "" {
			return f
		}
	}
	return ""
}

// jsonProblem says what is wrong with a body, naming the field where
// encoding/json knows it.
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te) && te.Field != "":
		return fmt.Sprintf("%s: want a JSON %s", te.Field, te.Type.Kind())
	case errors.As(err, &te):
		return fmt.Sprintf("want a JSON object, not %s", te.Value)
	case errors.As(err, &se):
		return fmt.Sprintf("invalid JSON at byte %d", se.Offset)
	}
	return "invalid JSON"
}

// apiMessage is a validation error as one line, each problem naming the
// command's JSON field as refundflow's validation does.
func apiMessage(err error) string {
	var out []string
	for line := range strings.SplitSeq(err.Error(), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return strings.Join(out, "; ")
}

// positiveSeq reports whether v is a stream sequence: a positive integer.
func positiveSeq(v string) bool {
	n, err := strconv.ParseUint(v, 10, 64)
	return err == nil && n > 0
}
