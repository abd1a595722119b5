package console

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/refundhub/refundhub/internal/opcommands"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// verdictPoll is how often an action reads the store for its verdict.
const verdictPoll = 100 * time.Millisecond

// handleResolve is POST /cases/{id}/resolve: the resolve command refundctl
// resolve publishes (retry, or close with a note), issued under the
// operator's name. It waits up to VerdictWait for the worker's verdict and
// then shows the case with it (a redirect, so a reload does not send the
// form again).
func (s *Server) handleResolve(c echo.Context) error {
	if !who(c).CanAct() {
		return errNotOperator
	}
	if err := s.checkCSRF(c); err != nil {
		return err
	}
	ctx := c.Request().Context()
	k, err := s.getCase(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	r := &refundflow.Resolve{Action: refundflow.ResolveAction(c.FormValue("action")), Note: c.FormValue("note")}
	if err := r.Validate(); err != nil {
		return s.renderCase(c, http.StatusBadRequest, k, "", formMessage(err))
	}
	if s.js == nil {
		return &Error{Code: CodeUnavailable, Message: "this console has no NATS connection; commands cannot be sent"}
	}
	id, err := opcommands.NewID()
	if err != nil {
		return err
	}
	cmd := refundflow.Command{ID: id, Kind: refundflow.InputResolve, Platform: refundflow.Platform(k.Platform),
		CaseID: k.ID, Resolve: r, Operator: who(c).Name, IssuedAt: s.now().UTC().Truncate(time.Millisecond)}
	if err := cmd.Validate(); err != nil {
		return s.renderCase(c, http.StatusBadRequest, k, "", formMessage(err))
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err = opcommands.Publish(pctx, s.js, cmd)
	cancel()
	if err != nil {
		s.logger.Warn("publish command failed", "command", id, "kind", cmd.Kind, "case", k.ID, "err", err)
		return &Error{Code: CodeUnavailable, Message: "the command could not be stored (NATS unreachable?); nothing was sent, try again"}
	}
	verdict := "pending"
	o, err := opcommands.AwaitOutcome(ctx, s.store, id, s.cfg.VerdictWait, verdictPoll)
	switch {
	case err == nil:
		verdict = o.Verdict
	case !errors.Is(err, opcommands.ErrPending):
		return err
	}
	s.metrics.commands.WithLabelValues(string(cmd.Kind), verdict).Inc()
	s.logger.Info("command issued", "command", id, "kind", cmd.Kind, "action", r.Action, "case", k.ID,
		"account", who(c).Name, "verdict", verdict)
	return c.Redirect(http.StatusSeeOther, "/cases/"+strconv.FormatInt(k.ID, 10)+"?"+url.Values{"command": {id}}.Encode())
}

// formMessage is a validation error as one line for the form.
func formMessage(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}
