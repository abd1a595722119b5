// Command receiver takes platform callbacks over HTTP and publishes them
// durably to NATS JetStream, answering 200 only after the JetStream ack
// (503 with Retry-After when it cannot store a callback in time).
//
// Routes (internal/callback/intake/routes.go): POST /callbacks/<token>,
// GET /callbacks/<token> (address-verification probe: 200, stores nothing),
// GET /healthz, GET /readyz, GET /metrics. Configuration is by environment;
// run it with -h for every variable and its default. SIGTERM or SIGINT stops
// accepting connections, lets in-flight requests finish within
// RECEIVER_SHUTDOWN_TIMEOUT and drains the NATS connections.
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
		fmt.Fprintln(os.Stderr, "receiver:", err)
		os.Exit(1)
	}
}
