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

// TestPostgresConnectionsGiveUpOnUnacknowledgedData: a network that drops
// packets held every statement on a PostgreSQL connection for as long as
// TCP retransmits, about a quarter of an hour; only writes had a bound
// (SetUpdateTimeout), so the worker's first read of an input, the
// console's pages and refundctl waited that long. Every connection now
// carries TCP_USER_TIMEOUT: 30 s until the store's bound is set, the
// bound for the connections dialed after.
func TestPostgresConnectionsGiveUpOnUnacknowledgedData(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("TCP_USER_TIMEOUT is Linux's")
	}
	ctx := context.Background()
	s, err := Open(ctx, pgtest.NewDatabase(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	limitOf := func(p *pool) time.Duration {
		t.Helper()
		c, err := p.DB.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var got time.Duration
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
			got, err = unackedLimitOf(raw)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	for name, p := range map[string]*pool{"writer": s.w, "reader": s.r, "recorder": s.records} {
		if got := limitOf(p); got != pgUnacked {
			t.Errorf("%s connection opened before the bound: TCP_USER_TIMEOUT %s; want %s", name, got, pgUnacked)
		}
	}
	s.SetUpdateTimeout(7 * time.Second)
	for name, p := range map[string]*pool{"writer": s.w, "reader": s.r, "recorder": s.records} {
		p.DB.SetMaxIdleConns(0) // the next connection is a new one
		if got := limitOf(p); got != 7*time.Second {
			t.Errorf("%s connection dialed after SetUpdateTimeout(7s): TCP_USER_TIMEOUT %s; want 7s", name, got)
		}
	}
}
