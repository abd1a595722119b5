// Package eventstest runs a real nats-server with JetStream inside a test
// process, for any package whose tests need JetStream: it listens on a random
// loopback port with its store in t.TempDir(), and can be stopped and started
// again on the same port and store to test outages and recovery.
package eventstest

import (
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Server is an embedded JetStream server owned by one test.
type Server struct {
	tb    testing.TB
	dir   string
	mu    sync.Mutex
	port  int
	ns    *server.Server
	conns []*nats.Conn
}

// Start starts a server on 127.0.0.1 and a random port, and registers its
// shutdown (and the closing of every Conn it handed out) with tb.Cleanup.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{tb: tb, dir: tb.TempDir(), port: -1}
	s.Restart()
	tb.Cleanup(func() {
		s.mu.Lock()
		conns := s.conns
		s.mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
		s.Stop()
	})
	return s
}

// URL is the client URL, stable across Stop and Restart.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return "nats://127.0.0.1:" + strconv.Itoa(s.port)
}

// StoreDir is the JetStream store directory.
func (s *Server) StoreDir() string { return s.dir }

// Stop shuts the server down and waits for it; stopping a stopped server
// does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	ns := s.ns
	s.ns = nil
	s.mu.Unlock()
	if ns == nil {
		return
	}
	ns.Shutdown()
	ns.WaitForShutdown()
}

// Restart starts the server again on the same port and store directory (the
// first call picks the port). It fails the test if the server is not ready
// within 10 seconds.
func (s *Server) Restart() {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ns != nil {
		s.tb.Fatalf("eventstest: Restart while running")
	}
	opts := &server.Options{
		ServerName: "eventstest",
		Host:       "127.0.0.1",
		Port:       s.port,
		JetStream:  true,
		StoreDir:   s.dir,
		NoLog:      true,
		NoSigs:     true,
	}
	var ns *server.Server
	var err error
	// The old listener's port can take a moment to become bindable again
	// on a loaded machine; retry for a while rather than fail the test.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ns, err = server.NewServer(opts)
		if err != nil {
			s.tb.Fatalf("eventstest: new server: %v", err)
		}
		go ns.Start()
		if ns.ReadyForConnections(10 * time.Second) {
			break
		}
		ns.Shutdown()
		ns.WaitForShutdown()
		if time.Now().After(deadline) {
			s.tb.Fatalf("eventstest: server on port %d not ready", s.port)
		}
	}
	if s.port < 0 {
		addr, ok := ns.Addr().(*net.TCPAddr)
		if !ok {
			s.tb.Fatalf("eventstest: unexpected listener address %v", ns.Addr())
		}
		s.port = addr.Port
	}
	s.ns = ns
}

// Conn connects a client that is closed at the end of the test. It does not
// reconnect after Stop; tests that need that pass their own options.
func (s *Server) Conn(opts ...nats.Option) *nats.Conn {
	s.tb.Helper()
	nc, err := nats.Connect(s.URL(), opts...)
	if err != nil {
		s.tb.Fatalf("eventstest: connect: %v", err)
	}
	s.mu.Lock()
	s.conns = append(s.conns, nc)
	s.mu.Unlock()
	return nc
}

// JetStream returns a JetStream context on a new Conn.
func (s *Server) JetStream() jetstream.JetStream {
	s.tb.Helper()
	js, err := jetstream.New(s.Conn())
	if err != nil {
		s.tb.Fatalf("eventstest: jetstream: %v", err)
	}
	return js
}

// WaitFor polls cond every 10ms until it returns true, failing the test with
// what after timeout. It is the condition wait tests use instead of sleeps.
func WaitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// String describes the server for test logs.
func (s *Server) String() string {
	return fmt.Sprintf("eventstest server %s (store %s)", s.URL(), s.dir)
}
