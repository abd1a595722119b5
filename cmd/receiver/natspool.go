package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go"

	"github.com/refundhub/refundhub/internal/events"
)

// natsPool is the receiver's NATS connections (RECEIVER_NATS_CONNS of
// them). Each reconnects on its own with events.ConnectOptions and logs with
// its number; the Publisher takes them in turn and skips one that is down.
type natsPool struct {
	conns  []*nats.Conn
	closed []chan struct{} // closed[i] is closed once conns[i] is closed for good
}

// connectPool opens n connections to url. onConnect runs after every
// connect and reconnect of any of them (the receiver re-ensures its stream
// then). A server that is down is not an error: with RetryOnFailedConnect
// the connections keep trying in the background. Once stopping reports
// true, a lost server is no longer a warning: under a Procfile runner NATS
// gets the same SIGTERM and may well go first, and a clean stop should not
// look like an incident.
func connectPool(url string, n int, logger *slog.Logger, onConnect func(), stopping func() bool) (*natsPool, error) {
	p := &natsPool{}
	for i := range n {
		log := logger.With("nats_conn", i+1)
		closed := make(chan struct{})
		opts := append(events.ConnectOptions("refundhub-receiver"),
			nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
				if err == nil { // our own drain at shutdown
					log.Debug("nats connection closed")
					return
				}
				if stopping() {
					log.Info("nats disconnected while stopping", "err", err)
					return
				}
				log.Warn("nats disconnected; callbacks get 503 until it is back", "err", err)
			}),
			nats.ReconnectHandler(func(nc *nats.Conn) {
				log.Info("nats reconnected", "url", events.RedactURLs(nc.ConnectedUrl()))
				onConnect()
			}),
			nats.ConnectHandler(func(nc *nats.Conn) {
				log.Info("nats connected", "url", events.RedactURLs(nc.ConnectedUrl()))
				onConnect()
			}),
			nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
		)
		nc, err := nats.Connect(url, opts...)
		if err != nil {
			p.close()
			return nil, events.ConnectError(url, err)
		}
		p.conns = append(p.conns, nc)
		p.closed = append(p.closed, closed)
	}
	return p, nil
}

// close closes every connection without draining (start-up failures and
// the deferred clean-up; closing a closed connection does nothing).
func (p *natsPool) close() {
	for _, nc := range p.conns {
		nc.Close()
	}
}

// drain drains every connection, so that whatever a client still buffers
// reaches the server, and waits until all of them are closed or ctx ends.
func (p *natsPool) drain(ctx context.Context) error {
	var errs []error
	var wait []int
	for i, nc := range p.conns {
		switch err := nc.Drain(); {
		case err == nil, errors.Is(err, nats.ErrConnectionClosed):
			wait = append(wait, i)
		default:
			errs = append(errs, fmt.Errorf("nats drain (connection %d): %w", i+1, err))
		}
	}
	for _, i := range wait {
		select {
		case <-p.closed[i]:
		case <-ctx.Done():
			return errors.Join(append(errs, fmt.Errorf("nats drain (connection %d): timed out", i+1))...)
		}
	}
	return errors.Join(errs...)
}
