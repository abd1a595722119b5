package casestore

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/testenv/pgtest"
)

// freezer is a TCP proxy that can stop forwarding in both directions
// while keeping every connection open: a PostgreSQL server that stops
// answering, as a network dropping packets or a hung server looks to the
// worker (the kernel acks what it sends, and nothing comes back).
type freezer struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	frozen bool
	thawed *sync.Cond
}

func newFreezer(t *testing.T, target string) *freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln, target: target}
	f.thawed = sync.NewCond(&f.mu)
	t.Cleanup(func() { f.set(false); _ = ln.Close() })
	go f.serve()
	return f
}

func (f *freezer) serve() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			s, err := net.Dial("tcp", f.target)
			if err != nil {
				_ = c.Close()
				return
			}
			go f.pipe(s, c)
			f.pipe(c, s)
		}()
	}
}

// pipe copies from src to dst, holding every chunk while frozen.
func (f *freezer) pipe(dst, src net.Conn) {
	defer func() { _ = dst.Close(); _ = src.Close() }()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			f.mu.Lock()
			for f.frozen {
				f.thawed.Wait()
			}
			f.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return
			}
			return
		}
	}
}

func (f *freezer) set(frozen bool) {
	f.mu.Lock()
	f.frozen = frozen
	f.mu.Unlock()
	f.thawed.Broadcast()
}

// TestAnUpdateAgainstADatabaseThatStopsAnsweringFailsWithinItsTimeout: the
// worker's writes on PostgreSQL are bounded (SetUpdateTimeout). A server
// that stops answering fails each update as the store being away
// (Unavailable, ErrStoreTimeout), within the bound, instead of holding the
// case's slot for as long as TCP takes to give up (about a quarter of an
// hour with a write outstanding); once it answers again, updates go
// through.
func TestAnUpdateAgainstADatabaseThatStopsAnsweringFailsWithinItsTimeout(t *testing.T) {
	u, err := url.Parse(pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	f := newFreezer(t, u.Host)
	u.Host = f.ln.Addr().String()
	ctx := context.Background()
	s, err := Open(ctx, u.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.set(false); _ = s.Close() })
	const bound = 2 * time.Second
	s.SetUpdateTimeout(bound)
	write := func() error {
		return s.Update(ctx, func(tx *Tx) error {
			_, err := tx.CreateCase(ctx, NewCase{Platform: Platform1688, OrderID: time.Now().Format("150405.000000000"),
				State: "requested", Request: []byte(`{}`), NextWakeAt: time.Now()})
			return err
		})
	}
	if err := write(); err != nil {
		t.Fatalf("update before the freeze: %v", err)
	}

	// Twice: the store serves again after the first.
	for round := range 2 {
		f.set(true)
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- write() }()
		select {
		case err = <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: an update against a database that stopped answering still waits after 30 s (bound: %s)", round, bound)
		}
		if err == nil || !errors.Is(err, ErrStoreTimeout) || !Unavailable(err) {
			t.Fatalf("round %d: update against a frozen database: %v after %s; want ErrStoreTimeout, the store unavailable", round, err, time.Since(start))
		}
		t.Logf("round %d: failed after %s: %v", round, time.Since(start).Round(time.Millisecond), err)

		f.set(false)
		s.SetUpdateTimeout(0) // a new connection and its login, on a loaded machine: not what is bounded here
		if err := write(); err != nil {
			t.Fatalf("update once the database answers again: %v", err)
		}
		s.SetUpdateTimeout(bound)
	}
}
