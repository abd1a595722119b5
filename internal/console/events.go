package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/refundhub/refundhub/internal/casestore"
)

// eventsPath is the event stream: an API route that a page's script also
// reads, with the page's session (authenticate lets sessions in here).
const eventsPath = "/api/v1/events"

// heartbeat is how often an idle stream sends a comment, so that proxies
// and the browser see it alive and a vanished client is noticed.
const heartbeat = 15 * time.Second

// caseEventJSON is the data of an event "case": what changed, and the
// version that tells a client whether it has seen it.
type caseEventJSON struct {
	ID            int64     `json:"id"`
	State         string    `json:"state"`
	AttentionCode string    `json:"attentionCode,omitempty"`
	Version       int64     `json:"version"`
	UpdatedAt     time.Time `json:"updatedAt"`
}

// changeFollower follows the store's case changes from a millisecond on.
//
// The cursor (ms) is the newest updated_at, in Unix milliseconds, the
// follower has sent. A transaction stamps updated_at when it starts, so
// commits do not land in stamp order: on PostgreSQL several writers (and
// hosts, whose clocks differ) commit side by side, and one that started
// first can commit after a later stamp was sent; on either store a case
// can be updated twice within a millisecond. Each poll therefore reads
// again the last changeSettle behind the cursor, and sends what it has not
// sent yet: a case whose version is newer than the one sent (sent, kept
// for the changes inside that window). A client resuming from an event id
// gets the window's changes again: delivery is at least once, and a
// change's version tells a repeat.
type changeFollower struct {
	store  *casestore.Store
	caseID int64
	ms     int64
	sent   map[int64]sentChange
}

// sentChange is the version of a case a follower sent, and its stamp.
type sentChange struct{ version, ms int64 }

// changeSettle is how far behind its stamp a commit can land and still be
// sent: a transaction's length, lock waits included, and the clock skew
// between hosts (NTP keeps it to milliseconds). Each poll reads this much
// of the history again, through cases_updated.
const changeSettle = 5 * time.Second

// poll returns the changes since the last poll, oldest first.
func (f *changeFollower) poll(r *http.Request) ([]casestore.CaseChange, error) {
	var out []casestore.CaseChange
	q := casestore.ChangesFilter{AfterMS: f.ms - changeSettle.Milliseconds(), AfterID: -1, CaseID: f.caseID, Limit: maxLimit}
	for {
		page, err := f.store.CaseChanges(r.Context(), q)
		if err != nil {
			return out, err
		}
		for _, c := range page {
			if f.sent[c.ID].version >= c.Version {
				continue
			}
			ms := c.UpdatedAt.UnixMilli()
			f.sent[c.ID] = sentChange{version: c.Version, ms: ms}
			f.ms = max(f.ms, ms)
			out = append(out, c)
		}
		if len(page) < q.Limit {
			break
		}
		last := page[len(page)-1]
		q.AfterMS, q.AfterID = last.UpdatedAt.UnixMilli(), last.ID
	}
	for id, c := range f.sent {
		if c.ms < f.ms-changeSettle.Milliseconds() {
			delete(f.sent, id)
		}
	}
	return out, nil
}

// handleEvents is GET /api/v1/events: a text/event-stream of case
// changes, polled from the store every Config.EventsInterval. Each event
// is "case", its id the cursor to resume from (Last-Event-ID, or
// ?cursor=); ?case= follows one case. Without a cursor the stream starts
// now. It ends when the client goes or CloseStreams is called.
func (s *Server) handleEvents(c echo.Context) error {
	f := &changeFollower{store: s.store, ms: s.now().UnixMilli(), sent: map[int64]sentChange{}}
	if v := c.QueryParam("case"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return invalidArg("case: a case id")
		}
		f.caseID = n
	}
	cursor := c.Request().Header.Get("Last-Event-ID")
	if cursor == "" {
		cursor = c.QueryParam("cursor")
	}
	if cursor != "" {
		n, err := strconv.ParseInt(cursor, 10, 64)
		if err != nil || n < 0 {
			return invalidArg("cursor: the id of an event of this stream")
		}
		f.ms = n
	} else if _, err := f.poll(c.Request()); err != nil && c.Request().Context().Err() == nil {
		// A stream from now on: what the window behind now holds is what
		// the client has seen, not news, and is read, not sent. Unread (the
		// store away), the stream opens all the same, and its first poll
		// sends the window: an EventSource answered with an error would
		// not connect again.
		s.logger.Warn("event stream: read case changes", "err", err)
	}

	w := c.Response()
	rc := http.NewResponseController(w)
	// The server's WriteTimeout bounds ordinary answers; a stream lives
	// until the client or the server ends it.
	if err := rc.SetWriteDeadline(time.Time{}); err != nil {
		s.logger.Debug("event stream: no write deadline control", "err", err)
	}
	h := w.Header()
	h.Set(echo.HeaderContentType, "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // a buffering proxy would hold events back
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, ": case changes\n\n"); err != nil {
		return nil
	}
	if err := rc.Flush(); err != nil {
		return nil
	}

	// send writes the changes since the last poll; an error is the
	// client's going.
	send := func() error {
		changes, err := f.poll(c.Request())
		if err != nil && c.Request().Context().Err() == nil {
			s.logger.Warn("event stream: read case changes", "err", err)
		}
		for _, k := range changes {
			data, err := json.Marshal(caseEventJSON{ID: k.ID, State: k.State, AttentionCode: k.AttentionCode, Version: k.Version, UpdatedAt: k.UpdatedAt})
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(w, "event: case\nid: %d\ndata: %s\n\n", k.UpdatedAt.UnixMilli(), data); err != nil {
				return err
			}
		}
		if len(changes) == 0 {
			return nil
		}
		return rc.Flush()
	}
	poll := time.NewTicker(s.cfg.EventsInterval)
	defer poll.Stop()
	beat := time.NewTicker(heartbeat)
	defer beat.Stop()
	for err := send(); err == nil; {
		select {
		case <-c.Request().Context().Done():
			return nil
		case <-s.streamsDone:
			return nil
		case <-poll.C:
			err = send()
		case <-beat.C:
			if _, err = fmt.Fprint(w, ": heartbeat\n\n"); err == nil {
				err = rc.Flush()
			}
		}
	}
	return nil // the client went: nothing to answer
}

// CloseStreams ends every open event stream, now and later: call it when
// the HTTP server shuts down (http.Server.RegisterOnShutdown), whose
// Shutdown otherwise waits for streams that never end on their own.
func (s *Server) CloseStreams() {
	s.closeStreams.Do(func() { close(s.streamsDone) })
}
