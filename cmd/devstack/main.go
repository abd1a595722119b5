// Command devstack runs the whole product on one machine with nothing but Go
// installed: an embedded NATS server with JetStream, the platform sandbox, the
// receiver, the worker and the operator console, wired together with
// generated development secrets and data under ./data. Ctrl-C stops the parts
// in dependency order (the components first, NATS last), so no accepted
// callback is lost.
// Running it again reuses the data and the secrets.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Environ(), os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "devstack: %v\n", err)
		stop()
		os.Exit(1)
	}
}

// out is where run writes; kept as a tiny alias for readability of signatures.
type out = io.Writer
