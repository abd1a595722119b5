// Command console serves the operator console: pages and a versioned JSON
// API (/api/v1) over the worker's case store, read through a read-only
// connection, and the operator's actions, published to the COMMANDS
// stream as refundctl publishes them (internal/opcommands).
//
// Routes (internal/console/routes.go). Every route but /healthz needs an
// API token (Authorization: Bearer) or a session from the login page.
// Configuration is by environment; run it with -h for every variable and
// docs/console.md for the whole story. SIGTERM or SIGINT stops accepting
// connections, lets in-flight requests finish within
// CONSOLE_SHUTDOWN_TIMEOUT and drains the NATS connection.
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
		fmt.Fprintln(os.Stderr, "console:", err)
		os.Exit(1)
	}
}
