package casestore

import (
	"context"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/refundhub/refundhub/internal/testenv/pgtest"
)

// TestPostgresConnectionsCarryALimitOnUnacknowledgedData: a network that
// drops packets held every statement on a PostgreSQL connection for as
// long as TCP retransmits, about a quarter of an hour; only writes had a
// bound (SetUpdateTimeout), so the worker's first read of an input, the
// console's pages and refundctl waited that long. Every connection now
// carries TCP_USER_TIMEOUT and a keepalive within it: 30 s until the
// store's bound is set; the bound from then on, for the connections
// dialed after and, at their next reuse, for those dialed before (the
// worker sets its bound after Open, whose connections live on). What it
// does to a read on a network dropping packets needs a firewall this
// test cannot set.
func TestPostgresConnectionsCarryALimitOnUnacknowledgedData(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("TCP_USER_TIMEOUT is Linux's")
	}
	ctx := context.Background()
	s, err := Open(ctx, pgtest.NewDatabase(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	socket := func(p *pool) (limit, idle time.Duration) {
		t.Helper()
		c, err := p.DB.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Raw(func(dc any) error {
			nc := dc.(*stdlib.Conn).Conn().PgConn().Conn()
			tcp, ok := nc.(*net.TCPConn)
			if !ok {
				t.Fatalf("connection is a %T; want TCP", nc)
			}
			raw, err := tcp.SyscallConn()
			if err != nil {
				return err
			}
			if limit, err = unackedLimitOf(raw); err != nil {
				return err
			}
			idle, err = keepIdleOf(raw)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return limit, idle
	}
	pools := map[string]*pool{"writer": s.w, "reader": s.r, "recorder": s.records}
	for name, p := range pools {
		if limit, idle := socket(p); limit != pgUnacked || idle != 10*time.Second {
			t.Errorf("%s connection opened before the bound: TCP_USER_TIMEOUT %s, keepalive after %s idle; want %s, 10s", name, limit, idle, pgUnacked)
		}
	}
	s.SetUpdateTimeout(6 * time.Second)
	for name, p := range pools {
		if limit, idle := socket(p); limit != 6*time.Second || idle != 2*time.Second {
			t.Errorf("%s connection dialed before SetUpdateTimeout(6s), reused after: TCP_USER_TIMEOUT %s, keepalive after %s idle; want 6s, 2s", name, limit, idle)
		}
		p.DB.SetMaxIdleConns(0) // the next connection is a new one
		if limit, idle := socket(p); limit != 6*time.Second || idle != 2*time.Second {
			t.Errorf("%s connection dialed after SetUpdateTimeout(6s): TCP_USER_TIMEOUT %s, keepalive after %s idle; want 6s, 2s", name, limit, idle)
		}
	}
}
