package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/replay"
)

// Replay of a stored callback: the case page's Replay button on a callback
// timeline entry, and POST /api/v1/replay. Both read the message from the
// callback stream and store it again with its original subject, headers
// (in the replay's trace: replaySpan) and Nats-Msg-Id through package
// replay, as refundctl replay --to stream does. The console has NATS but
// no callback token, so it never posts to the receiver.

// replayTimeout bounds a replay's stream read and its publish.
const replayTimeout = 5 * time.Second

// callbackSeq is the stream message a callback timeline entry came from
// (refundflow.CallbackDetail); seq 0 for other entries, and for callbacks
// recorded before the worker wrote it.
func callbackSeq(kind string, detail json.RawMessage) (stream string, seq uint64) {
	if kind != string(casestore.KindCallback) || len(detail) == 0 {
		return "", 0
	}
	var d refundflow.CallbackDetail
	if json.Unmarshal(detail, &d) != nil {
		return "", 0
	}
	return d.Stream, d.Seq
}

// ReplaySeq is the stream sequence the case page's Replay button of this
// entry replays; 0: the entry has none.
func (e timelineJSON) ReplaySeq() uint64 {
	_, seq := callbackSeq(e.Kind, e.Detail)
	return seq
}

// replayJSON is a replay's outcome: POST /api/v1/replay's answer.
type replayJSON struct {
	Seq     uint64 `json:"seq"`
	Stream  string `json:"stream"`
	Subject string `json:"subject"`
	MsgID   string `json:"msgId"`
	// StoredSeq is the stream's copy: a new message, or (Duplicate) the
	// one it had inside its duplicate window.
	StoredSeq uint64 `json:"storedSeq"`
	Duplicate bool   `json:"duplicate"`
	Verdict   string `json:"verdict"`
	// CaseID is the case the replay was noted on (0: none asked, or no
	// write handle).
	CaseID int64  `json:"caseId,omitempty"`
	Note   string `json:"note"` // replay.WhatItDoes
}

var (
	errReplayRole    = &Error{Code: CodeForbidden, Message: "replaying a callback needs the operator role"}
	errReplayNoNATS  = &Error{Code: CodeUnavailable, Message: "this console has no NATS connection; callbacks cannot be replayed"}
	errReplayBadSeq  = &Error{Code: CodeInvalidArgument, Param: "seq", Message: "seq: a stream sequence, a positive integer"}
	replayStreamDown = "the callback stream could not be read or written (NATS unreachable?); nothing was replayed, try again"
)

// replayOne re-delivers stream message seq of the callback stream into the
// stream as by, and notes it on case caseID's timeline when caseID is set
// and the console has its write handle. Refusals are *Error: not_found
// (never stored), message_gone (aged out), unavailable.
func (s *Server) replayOne(ctx context.Context, by Account, seq uint64, caseID int64) (replayJSON, error) {
	if s.js == nil {
		return replayJSON{}, errReplayNoNATS
	}
	ctx, cancel := context.WithTimeout(ctx, replayTimeout)
	defer cancel()
	rd := replay.Reader{JS: s.js, Stream: s.cfg.CallbackStream, Timeout: replayTimeout}
	it, err := rd.One(ctx, seq)
	switch {
	case errors.Is(err, replay.ErrNotStored):
		return replayJSON{}, &Error{Code: CodeNotFound, Message: err.Error() + "; nothing was replayed"}
	case errors.Is(err, replay.ErrGone):
		return replayJSON{}, &Error{Code: CodeMessageGone, Message: err.Error() + "; nothing was replayed"}
	case err != nil:
		s.logger.Warn("replay: read the callback stream", "seq", seq, "err", err)
		return replayJSON{}, &Error{Code: CodeUnavailable, Message: replayStreamDown}
	}
	pctx, span := s.replaySpan(ctx, seq)
	st, err := replay.ToStream(pctx, s.js, it)
	if err != nil {
		span.SetStatus(codes.Error, CodeUnavailable)
		span.End()
		s.logger.Warn("replay: publish", "seq", seq, "subject", it.Subject, "err", err)
		return replayJSON{}, &Error{Code: CodeUnavailable, Message: replayStreamDown}
	}
	span.SetAttributes(attribute.Bool("duplicate", st.Duplicate), attribute.Int64("stored_seq", int64(st.Seq)))
	span.End()
	out := replayJSON{Seq: seq, Stream: s.cfg.CallbackStream, Subject: it.Subject, MsgID: it.MsgID, StoredSeq: st.Seq,
		Duplicate: st.Duplicate, Verdict: st.Verdict(), Note: replay.WhatItDoes}
	if caseID > 0 && s.notes != nil {
		// The replay went out whatever happens here: a failed note is
		// logged, and the answer says no case was noted.
		if err := replay.Note(ctx, s.notes, replay.Noted{CaseID: caseID, Item: it, Stored: st, Operator: by.Name}); err != nil {
			s.logger.Error("replay: note on the case", "case", caseID, "seq", seq, "err", err)
		} else {
			out.CaseID = caseID
		}
	}
	s.logger.Info("callback replayed", "seq", seq, "subject", it.Subject, "stored_seq", st.Seq, "duplicate", st.Duplicate,
		"case", caseID, "account", by.Name)
	return out, nil
}

// checkCaseCallback refuses a replay of seq on behalf of case k unless a
// callback entry of k's timeline came from that message of the console's
// callback stream: the note then lands on the case the callback was for.
func (s *Server) checkCaseCallback(ctx context.Context, k casestore.Case, seq uint64) error {
	tl, err := s.store.Timeline(ctx, k.ID)
	if err != nil {
		return err
	}
	for _, e := range tl {
		if stream, n := callbackSeq(string(e.Kind), e.Detail); n == seq && stream == s.cfg.CallbackStream {
			return nil
		}
	}
	return &Error{Code: CodeInvalidArgument, Param: "seq", Message: fmt.Sprintf(
		"seq %d: no callback on case %d's timeline came from message %d of stream %s; nothing was replayed", seq, k.ID, seq, s.cfg.CallbackStream)}
}

// parseSeq reads a stream sequence: a positive integer.
func parseSeq(raw string) (uint64, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(raw), 10, 64)
	if err != nil || n == 0 {
		return 0, errReplayBadSeq
	}
	return n, nil
}

// replayedView is the verdict of the replay the case page was redirected
// with (?replayed=SEQ&stored=SEQ&duplicate=true).
type replayedView struct {
	Seq     uint64
	Verdict string
	Note    string
}

// replayedOf reads the case page's replay verdict from its query (nil:
// none). It only words what the redirect says; the timeline note is the
// record.
func replayedOf(c echo.Context) *replayedView {
	seq, err := parseSeq(c.QueryParam("replayed"))
	if err != nil {
		return nil
	}
	stored, err := parseSeq(c.QueryParam("stored"))
	if err != nil {
		return nil
	}
	st := replay.Stored{Seq: stored, Duplicate: c.QueryParam("duplicate") == "true"}
	return &replayedView{Seq: seq, Verdict: st.Verdict(), Note: replay.WhatItDoes}
}

// handleReplayForm is POST /cases/{id}/replay (seq): the case page's
// Replay button. A refusal is shown on the case page beside the timeline
// with its status; a replay redirects to the case with its verdict, and is
// noted on the timeline with the operator's name.
func (s *Server) handleReplayForm(c echo.Context) error {
	if !who(c).CanAct() {
		return errReplayRole
	}
	if err := s.checkCSRF(c); err != nil {
		return err
	}
	ctx := c.Request().Context()
	k, err := s.getCase(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	seq, err := parseSeq(c.FormValue("seq"))
	if err == nil {
		err = s.checkCaseCallback(ctx, k, seq)
	}
	var out replayJSON
	if err == nil {
		out, err = s.replayOne(ctx, who(c), seq, k.ID)
	}
	var ce *Error
	if errors.As(err, &ce) && ce.Code != CodeUnavailable {
		return s.renderCase(c, statusOf[ce.Code], k, "", &formError{Form: "replay", Message: ce.Message})
	}
	if err != nil {
		return err
	}
	q := url.Values{"replayed": {strconv.FormatUint(seq, 10)}, "stored": {strconv.FormatUint(out.StoredSeq, 10)},
		"duplicate": {strconv.FormatBool(out.Duplicate)}}
	return c.Redirect(http.StatusSeeOther, fmt.Sprintf("/cases/%d?%s", k.ID, q.Encode()))
}

// replayRequest is the body of POST /api/v1/replay.
type replayRequest struct {
	Seq uint64 `json:"seq"`
	// CaseID, when set, must be the case a callback entry of whose
	// timeline came from Seq; the replay is then noted there.
	CaseID int64 `json:"caseId"`
}

// handleAPIReplay is POST /api/v1/replay {"seq":N[,"caseId":K]}: an
// operator token replays stream message N of the callback stream into
// the stream.
func (s *Server) handleAPIReplay(c echo.Context) error {
	if !who(c).CanAct() {
		return errReplayRole
	}
	var req replayRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if req.Seq == 0 {
		return errReplayBadSeq
	}
	ctx := c.Request().Context()
	if req.CaseID != 0 {
		k, err := s.getCase(ctx, strconv.FormatInt(req.CaseID, 10))
		if err != nil {
			return err
		}
		if err := s.checkCaseCallback(ctx, k, req.Seq); err != nil {
			return err
		}
	}
	out, err := s.replayOne(ctx, who(c), req.Seq, req.CaseID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}
