// Command refundctl is the operator and developer CLI of refundhub: it issues
// operator commands to the worker (request, ship, cancel, message), lists
// the refund reasons the platform offers (reasons), reads the case store
// (list, show, dead-letters), re-delivers stored callbacks
// (replay), synthesises platform callbacks (trigger), lists the parked ones
// with the profile lines that would make their types known (parked) and
// checks the platform profile's guesses against the platform with read-only
// calls (doctor).
//
// Run `refundctl --help` for the command reference and the environment it reads.
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
		fmt.Fprintln(os.Stderr, "refundctl: "+errorLine(err))
		os.Exit(exitCode(err))
	}
}
