// Command worker drives refund cases to their end: it consumes platform
// callbacks and operator commands from NATS JetStream (durable pull
// consumers shared by every worker process), fetches the authoritative
// refund state from the platform API, decides the next step
// (internal/refundflow), records the intent in SQLite before every side
// effect, calls the platform and records the result. A timer sweep and a
// reconciler re-check cases whose callbacks never came.
//
// Configuration is by environment; run it with -h for every variable and its
// default. SIGTERM or SIGINT stops fetching messages, lets in-flight steps
// finish within WORKER_SHUTDOWN_TIMEOUT, closes the database and drains NATS.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}
