package console

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/runbook"
)

// caseJSON is a case on the API.
type caseJSON struct {
	ID         int64  `json:"id"`
	Platform   string `json:"platform"`
	OrderID    string `json:"orderId"`
	SubOrderID string `json:"subOrderId,omitempty"`
	RefundID   string `json:"refundId,omitempty"`
	State      string `json:"state"`
	// Version counts the case's updates: an event of /api/v1/events
	// with a higher one is news.
	Version              int64           `json:"version"`
	ParkedState          string          `json:"parkedState,omitempty"`
	AttentionCode        string          `json:"attentionCode,omitempty"`
	AttentionMessage     string          `json:"attentionMessage,omitempty"`
	PlatformStatus       string          `json:"platformStatus,omitempty"`
	LastPlatformCheckAt  *time.Time      `json:"lastPlatformCheckAt,omitempty"`
	NextWakeAt           *time.Time      `json:"nextWakeAt,omitempty"`
	OpenedBy             string          `json:"openedBy,omitempty"`
	UnreadSellerMessages int             `json:"unreadSellerMessages,omitempty"`
	CreatedAt            time.Time       `json:"createdAt"`
	UpdatedAt            time.Time       `json:"updatedAt"`
	MovedAt              time.Time       `json:"movedAt"` // when it last moved (casestore.Case.IdleSince): idle since
	Request              json.RawMessage `json:"request,omitempty"`
	// Plan is what the worker read off the platform's form for the
	// request (refundctl show prints it, from the store or from here).
	Plan     json.RawMessage `json:"plan,omitempty"`
	Shipment json.RawMessage `json:"shipment,omitempty"`
	// Why is the "why here, what next" line the case page shows.
	Why string `json:"why"`
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// rawOrNil keeps a stored JSON document, dropping an empty one.
func rawOrNil(d json.RawMessage) json.RawMessage {
	if len(d) == 0 || string(d) == "{}" || string(d) == "null" {
		return nil
	}
	return d
}

func (s *Server) caseJSON(c casestore.Case) caseJSON {
	return caseJSON{ID: c.ID, Platform: string(c.Platform), OrderID: c.OrderID, SubOrderID: c.SubOrderID, RefundID: c.RefundID,
		State: c.State, Version: c.Version, ParkedState: c.ParkedState, AttentionCode: c.AttentionCode, AttentionMessage: c.AttentionMessage,
		PlatformStatus: c.PlatformStatus, LastPlatformCheckAt: optTime(c.LastPlatformCheckAt), NextWakeAt: optTime(c.NextWakeAt),
		OpenedBy: c.OpenedBy, UnreadSellerMessages: c.UnreadSellerMessages, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt, MovedAt: c.IdleSince(),
		Request: rawOrNil(c.Request), Plan: rawOrNil(c.Plan), Shipment: rawOrNil(c.Shipment), Why: whyNext(c, s.now())}
}

// casesJSON is GET /api/v1/cases: a page, and the cursor of the next one
// (opaque; valid for the same filters and order).
type casesJSON struct {
	Cases      []caseJSON `json:"cases"`
	NextCursor string     `json:"nextCursor,omitempty"`
}

func (s *Server) handleAPICases(c echo.Context) error {
	q, err := parseCaseQuery(c.QueryParams())
	if err != nil {
		return err
	}
	cases, next, err := s.listCases(c.Request().Context(), q)
	if err != nil {
		return err
	}
	out := casesJSON{Cases: make([]caseJSON, 0, len(cases)), NextCursor: next}
	for _, k := range cases {
		out.Cases = append(out.Cases, s.caseJSON(k))
	}
	return c.JSON(http.StatusOK, out)
}

type stepJSON struct {
	ID             int64      `json:"id"`
	Step           string     `json:"step"`
	Status         string     `json:"status"`
	IdempotencyKey string     `json:"idempotencyKey,omitempty"`
	RequestID      string     `json:"requestId,omitempty"`
	ErrorCode      string     `json:"errorCode,omitempty"`
	ErrorMessage   string     `json:"errorMessage,omitempty"`
	Request        string     `json:"request,omitempty"`
	Outcome        string     `json:"outcome,omitempty"`
	Begins         int        `json:"begins"`
	Refusals       int        `json:"refusals"`
	StartedAt      time.Time  `json:"startedAt"`
	FinishedAt     *time.Time `json:"finishedAt,omitempty"`
}

type timelineJSON struct {
	ID      int64           `json:"id"`
	At      time.Time       `json:"at"`
	Kind    string          `json:"kind"`
	Summary string          `json:"summary"`
	Detail  json.RawMessage `json:"detail,omitempty"`
}

type messageJSON struct {
	MessageID string     `json:"messageId"`
	Author    string     `json:"author"`
	Content   string     `json:"content"`
	Images    string     `json:"images,omitempty"`
	SentAt    *time.Time `json:"sentAt,omitempty"`
}

// caseDetailJSON is GET /api/v1/cases/{id}.
type caseDetailJSON struct {
	Case     caseJSON       `json:"case"`
	Advice   string         `json:"advice,omitempty"`
	Steps    []stepJSON     `json:"steps"`
	Timeline []timelineJSON `json:"timeline"`
	Messages []messageJSON  `json:"messages"`
}

// caseDetail reads everything the case page and its API answer show.
func (s *Server) caseDetail(ctx context.Context, k casestore.Case) (caseDetailJSON, error) {
	d := caseDetailJSON{Case: s.caseJSON(k), Advice: runbook.ForCase(runbook.Tailor(advice[k.AttentionCode], string(k.Platform), k.ParkedState), k.ID),
		Steps: []stepJSON{}, Timeline: []timelineJSON{}, Messages: []messageJSON{}}
	steps, err := s.store.Steps(ctx, k.ID)
	if err != nil {
		return d, err
	}
	for _, st := range steps {
		d.Steps = append(d.Steps, stepJSON{ID: st.ID, Step: st.Step, Status: string(st.Status), IdempotencyKey: st.IdempotencyKey,
			RequestID: st.RequestID, ErrorCode: st.ErrorCode, ErrorMessage: st.ErrorMessage, Request: st.Request, Outcome: st.Outcome,
			Begins: st.Begins, Refusals: st.Refusals, StartedAt: st.StartedAt, FinishedAt: optTime(st.FinishedAt)})
	}
	tl, err := s.store.Timeline(ctx, k.ID)
	if err != nil {
		return d, err
	}
	for _, e := range tl {
		d.Timeline = append(d.Timeline, timelineJSON{ID: e.ID, At: e.At, Kind: string(e.Kind), Summary: e.Summary, Detail: rawOrNil(e.Detail)})
	}
	msgs, err := s.store.CaseMessages(ctx, k.ID)
	if err != nil {
		return d, err
	}
	for _, m := range msgs {
		d.Messages = append(d.Messages, messageJSON{MessageID: m.MessageID, Author: m.Author, Content: m.Content, Images: m.Images, SentAt: optTime(m.SentAt)})
	}
	return d, nil
}

func (s *Server) handleAPICase(c echo.Context) error {
	k, err := s.getCase(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	d, err := s.caseDetail(c.Request().Context(), k)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, d)
}

type deadLetterJSON struct {
	ID          int64      `json:"id"`
	MsgID       string     `json:"msgId"`
	Subject     string     `json:"subject"`
	Reason      string     `json:"reason"`
	Error       string     `json:"error,omitempty"`
	Deliveries  int        `json:"deliveries"`
	CreatedAt   time.Time  `json:"createdAt"`
	RetriedAt   *time.Time `json:"retriedAt,omitempty"`
	DiscardedAt *time.Time `json:"discardedAt,omitempty"`
	DiscardedBy string     `json:"discardedBy,omitempty"`
	DiscardNote string     `json:"discardNote,omitempty"`
}

func (s *Server) handleHealthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) handleReadyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		s.logger.Debug("not ready", "err", err)
		return &Error{Code: CodeNotReady, Message: "not ready: " + err.Error()}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}
