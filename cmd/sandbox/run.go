package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/refundhub/refundhub/internal/sandbox"
)

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { usage(stdout) }
	if len(args) > 0 {
		args = args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (configuration comes from the environment; see -h)", fs.Args())
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	logger := cfg.log.Logger(stderr)
	cfg.sb.Logger = logger

	sb, err := sandbox.New(cfg.sb)
	if err != nil {
		return fmt.Errorf("create sandbox: %w", err)
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.addr, err)
	}
	srv := &http.Server{Handler: sb.Handler(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)} // net/http's own complaints, in the one log format
	// Run (the seller, the pusher, the state file's saver) ends after the
	// server has stopped: its last save holds what the requests answered
	// by then changed. (A request the faults hold past the 5 s shutdown
	// grace, ErrLate or ErrTimeout, may change a refund after it.)
	runCtx, endRun := context.WithCancel(context.WithoutCancel(ctx))
	defer endRun()
	runDone := make(chan error, 1)
	go func() { runDone <- sb.Run(runCtx) }()
	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(ln) }()
	logger.Info("sandbox listening", "addr", ln.Addr().String(), "callback_url", redactURL(cfg.sb.CallbackURL),
		"access_key", cfg.sb.AccessKey, "seller", cfg.sb.Seller.Decision, "auto_create", cfg.sb.AutoCreate,
		"profile", cfg.profilePath)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-serveDone:
		stop()
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
	}
	stop()
	endRun()
	if err := <-runDone; err != nil {
		return fmt.Errorf("sandbox run: %w", err)
	}
	logger.Info("sandbox stopped")
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", serveErr)
	}
	return nil
}

// redactURL hides the last path segment and the query of a callback URL:
// that is where the receiver's secret token lives (/callbacks/<token>).
func redactURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "<unparsable URL>"
	}
	u.User = nil
	if u.RawQuery != "" {
		u.RawQuery = "REDACTED"
	}
	if i := strings.LastIndex(u.Path, "/"); i >= 0 && i < len(u.Path)-1 {
		u.Path = u.Path[:i+1] + "REDACTED"
		u.RawPath = ""
	}
	return u.String()
}
