// Command sandbox runs the stateful simulator of the Xportcn/PandaPon
// after-sales API (package internal/sandbox) on a local address. Run with -h
// for the environment variables it reads.
package main

import (
	"context"
	"fmt"
	"os"
)

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox:", err)
		os.Exit(1)
	}
}
