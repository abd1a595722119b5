package apiclient

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"testing"
)

// TestCallsRunningTogetherKeepTheirConnections: when as many calls as
// MaxIdleConns finish together, every connection goes back to the pool
// (none is closed as one too many), and the next as many calls reuse them
// all instead of opening new ones. With the pool fixed at 32, a worker
// running 100 calls at once closed up to 68 connections whenever its calls
// finished together and dialed as many again (over HTTPS, a TLS handshake
// each, across the border). Each call waits at the server until all have
// arrived, so that they do run together.
func TestCallsRunningTogetherKeepTheirConnections(t *testing.T) {
	const calls = 64
	var arrived atomic.Int64
	var release chan struct{}
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if arrived.Add(1)%calls == 0 {
			close(release)
		}
		<-release
		writeBody(w, 200, env(`{}`))
	})
	cfg := testConfig(srv.URL)
	cfg.MaxIdleConns = calls
	c := newTestClient(t, cfg)

	round := func(name string) (reused, kept int, closed []error) {
		t.Helper()
		release = make(chan struct{})
		var mu sync.Mutex
		var puts, done sync.WaitGroup
		puts.Add(calls)
		for range calls {
			done.Go(func() {
				var put atomic.Bool // PutIdleConn came: puts counts this call
				trace := &httptrace.ClientTrace{
					GotConn: func(info httptrace.GotConnInfo) {
						mu.Lock()
						defer mu.Unlock()
						if info.Reused {
							reused++
						}
					},
					// Called once the response is read: nil when the
					// connection went back to the pool, why not otherwise.
					PutIdleConn: func(err error) {
						mu.Lock()
						defer mu.Unlock()
						if err == nil {
							kept++
						} else {
							closed = append(closed, err)
						}
						if put.CompareAndSwap(false, true) {
							puts.Done()
						}
					},
				}
				if _, err := c.TaobaoCancel(httptrace.WithClientTrace(context.Background(), trace), "R1"); err != nil {
					t.Errorf("%s: call: %v", name, err)
					if put.CompareAndSwap(false, true) { // no response to put back
						puts.Done()
					}
				}
			})
		}
		done.Wait()
		puts.Wait()
		return reused, kept, closed
	}
	if _, kept, closed := round("first calls"); kept != calls || len(closed) != 0 {
		t.Fatalf("first %d calls together: %d connections kept, %d closed (%v); want all %d kept", calls, kept, len(closed), errors.Join(closed[:min(1, len(closed))]...), calls)
	}
	if reused, _, _ := round("next calls"); reused != calls {
		t.Errorf("next %d calls together: %d reused a connection; want all %d (the others dialed a new one)", calls, reused, calls)
	}
	if got := srv.count(); got != 2*calls {
		t.Errorf("the server answered %d calls; want %d", got, 2*calls)
	}
}
