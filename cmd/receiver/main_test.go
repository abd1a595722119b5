package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/events/eventstest"
	"github.com/refundhub/refundhub/internal/testenv/syncbuf"
)

const token = "e2e-token-0123456789abcdef"

// syncBuffer is a log and output sink the test reads while it is written.
type syncBuffer = syncbuf.Buffer

func envFunc(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestHelpListsEveryVariable(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-h"}, envFunc(nil), &out, io.Discard); err != nil {
		t.Fatalf("run -h: %v", err)
	}
	for _, v := range envVars {
		if !strings.Contains(out.String(), v.Name+" (default: ") {
			t.Errorf("-h output lacks %s", v.Name)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	const secret = "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ="
	dir := t.TempDir()
	badProfile, goodProfile := filepath.Join(dir, "bad.toml"), filepath.Join(dir, "good.toml")
	if err := os.WriteFile(badProfile, []byte("[callbacks.taobao]\ntypes = { TB_REFUND = \"refunds\" }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(goodProfile, []byte("[callbacks.taobao]\ntypes = { TB_STATUS = \"order_status\" }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{}, "CALLBACK_TOKEN is not set: set CALLBACK_TOKEN to a long random secret"},
		{map[string]string{"CALLBACK_TOKEN": "short"}, "CALLBACK_TOKEN must be 16 to 256 characters"},
		{map[string]string{"CALLBACK_TOKEN": "has spaces in it, sixteen+"}, "CALLBACK_TOKEN may only contain"},
		{map[string]string{"CALLBACK_TOKEN": token, "CALLBACK_MAX_BYTES": "lots"}, "CALLBACK_MAX_BYTES"},
		{map[string]string{"CALLBACK_TOKEN": token, "RECEIVER_PUBLISH_TIMEOUT": "1h"}, "RECEIVER_PUBLISH_TIMEOUT"},
		{map[string]string{"CALLBACK_TOKEN": token, "RECEIVER_PUBLISH_TIMEOUT": "1s"}, "RECEIVER_PUBLISH_TIMEOUT"},
		{map[string]string{"CALLBACK_TOKEN": token, "CALLBACK_STREAM_REPLICAS": "9"}, "replicas"},
		{map[string]string{"CALLBACK_TOKEN": token, "CALLBACK_STREAM_MAX_AGE": "forever"}, "CALLBACK_STREAM_MAX_AGE"},
		{map[string]string{"CALLBACK_TOKEN": token, "UPSTREAM_PROFILE": badProfile}, "UPSTREAM_PROFILE: platform profile " + badProfile + ": callbacks.taobao.types.TB_REFUND"},
		{map[string]string{"CALLBACK_TOKEN": token, "UPSTREAM_PROFILE": filepath.Join(dir, "none.toml")}, "UPSTREAM_PROFILE"},
		{map[string]string{"CALLBACK_TOKEN": token, "LOG_LEVEL": "loud"}, "LOG_LEVEL"},
		{map[string]string{"CALLBACK_TOKEN": token, "RECEIVER_NATS_CONNS": "0"}, "RECEIVER_NATS_CONNS"},
		{map[string]string{"CALLBACK_TOKEN": token, "RECEIVER_NATS_CONNS": "17"}, "RECEIVER_NATS_CONNS"},
		{map[string]string{"CALLBACK_TOKEN": token, "RECEIVER_NATS_CONNS": "two"}, "RECEIVER_NATS_CONNS"},
		{map[string]string{"CALLBACK_TOKEN": token, "CALLBACK_SIGNING_SECRETS": "not-a-whsec " + secret, "NATS_URL": "nats://127.0.0.1:1"}, "signing secret #1"},
	}
	for _, c := range cases {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var stderr syncBuffer
		err := run(ctx, nil, envFunc(c.env), io.Discard, &stderr)
		cancel()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("run with %v = %v; want an error containing %q", c.env, err, c.want)
			continue
		}
		for _, s := range []string{token, secret, "not-a-whsec"} {
			if strings.Contains(err.Error(), s) || strings.Contains(stderr.String(), s) {
				t.Errorf("run with %v: a secret appears in the error or log: %v", c.env, err)
			}
		}
	}
	cfg, err := loadConfig(envFunc(map[string]string{"CALLBACK_TOKEN": token, "UPSTREAM_PROFILE": goodProfile}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:8080" || cfg.NATSURL != "nats://127.0.0.1:4222" || cfg.NATSConns != events.DefaultPublishConns || cfg.MaxBytes != 64<<10 ||
		cfg.PublishTimeout != 500*time.Millisecond || cfg.Stream.MaxAge != 7*24*time.Hour || len(cfg.TypeNames[0]) != 6 || cfg.TypeNames[0]["TB_STATUS"] != "order_status" || len(cfg.TypeNames[1]) != 5 {
		t.Errorf("defaults = %+v", cfg)
	}
}

// listening finds the receiver's "receiver listening" log line (JSON, the
// default format) and its url attribute.
var listening = regexp.MustCompile(`"msg":"receiver listening".*?"url":"(http://[^"]+)"`)

// listenURL is the base URL the receiver logged it listens on, or "".
func listenURL(logs string) string {
	if m := listening.FindStringSubmatch(logs); m != nil {
		return m[1]
	}
	return ""
}

// startRun runs the receiver like main does and returns its base URL and a
// stop function that cancels it and returns run's error.
func startRun(t *testing.T, env map[string]string, stderr io.Writer) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var logs syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, envFunc(env), io.Discard, io.MultiWriter(&logs, stderr)) }()
	var base string
	eventstest.WaitFor(t, 30*time.Second, "receiver to listen", func() bool {
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v", err)
		default:
		}
		base = listenURL(logs.String())
		return base != ""
	})
	eventstest.WaitFor(t, 30*time.Second, "/readyz 200", func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("run did not return after cancel")
			return nil
		}
	}
	t.Cleanup(func() { _ = stop() })
	return base, stop
}

func body(n int) []byte {
	return fmt.Appendf(nil, `{"messageType":"ORDER_CREATE","messageBody":"{\"orderId\":\"%d\"}","messagePlatform":1,"timestamp":"%d"}`, n, 1779263269913+n)
}

func TestRunEndToEnd(t *testing.T) {
	ns := eventstest.Start(t)
	var stderr syncBuffer
	base, stop := startRun(t, map[string]string{
		"RECEIVER_ADDR": "127.0.0.1:0", "NATS_URL": ns.URL(), "CALLBACK_TOKEN": token, "LOG_LEVEL": "debug",
		"CALLBACK_STREAM": "E2E", "CALLBACK_STREAM_MAX_AGE": "1h", "RECEIVER_NATS_CONNS": "3",
	}, &stderr)

	resp, err := http.Post(base+"/callbacks/"+token, "application/json", bytes.NewReader(body(1)))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(got) != `{"code":200,"msg":"success"}`+"\n" {
		t.Fatalf("POST = %d %s; want 200 success", resp.StatusCode, got)
	}
	js := ns.JetStream()
	st, err := js.Stream(context.Background(), "E2E")
	if err != nil {
		t.Fatalf("stream E2E was not created: %v", err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 || info.Config.MaxAge != time.Hour {
		t.Errorf("stream: %d msgs, max age %s; want 1, 1h", info.State.Msgs, info.Config.MaxAge)
	}
	if err := stop(); err != nil {
		t.Errorf("run after cancel = %v; want nil", err)
	}
	logs := stderr.String()
	if !strings.Contains(logs, `"msg":"callback stored"`) || !strings.Contains(logs, `"msg":"stopped"`) {
		t.Errorf("logs lack the debug line for the stored callback or the stop line:\n%s", logs)
	}
	for i := 1; i <= 3; i++ {
		if !regexp.MustCompile(`"msg":"nats connected".*"nats_conn":` + strconv.Itoa(i) + `\b`).MatchString(logs) {
			t.Errorf("logs lack the connect line of NATS connection %d of 3:\n%s", i, logs)
		}
	}
	if strings.Contains(logs, token) {
		t.Error("logs contain the callback token")
	}
}

// TestShutdownLosesNothing cancels run while requests are in flight: every
// request that got a 200 must be in the stream.
func TestShutdownLosesNothing(t *testing.T) {
	ns := eventstest.Start(t)
	base, stop := startRun(t, map[string]string{
		"RECEIVER_ADDR": "127.0.0.1:0", "NATS_URL": ns.URL(), "CALLBACK_TOKEN": token,
	}, io.Discard)
	var ok, n atomic.Int64
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 20 * time.Second}
	for range 8 {
		wg.Go(func() {
			for {
				resp, err := client.Post(base+"/callbacks/"+token, "application/json", bytes.NewReader(body(int(n.Add(1)))))
				if err != nil {
					return // server gone
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					ok.Add(1)
				}
			}
		})
	}
	eventstest.WaitFor(t, 30*time.Second, "some accepted callbacks", func() bool { return ok.Load() >= 50 })
	if err := stop(); err != nil {
		t.Errorf("run after cancel = %v", err)
	}
	wg.Wait()
	st, err := ns.JetStream().Stream(context.Background(), events.DefaultStreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(">"))
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs < uint64(ok.Load()) {
		t.Errorf("stream has %d messages but %d callbacks were answered 200", info.State.Msgs, ok.Load())
	}
}

// TestStartsWithoutNATSAndRecovers starts the receiver while NATS is down:
// it serves, /readyz and callbacks answer 503, and once NATS is up the stream
// is created and callbacks are stored; every connection of the pool comes
// up, and shutdown drains them all.
func TestStartsWithoutNATSAndRecovers(t *testing.T) {
	ns := eventstest.Start(t)
	ns.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, envFunc(map[string]string{
			"RECEIVER_ADDR": "127.0.0.1:0", "NATS_URL": ns.URL(), "CALLBACK_TOKEN": token, "RECEIVER_NATS_CONNS": "2",
		}), &stdout, &stderr)
	}()
	var base string
	eventstest.WaitFor(t, 30*time.Second, "receiver to listen", func() bool {
		base = listenURL(stderr.String())
		return base != ""
	})
	status := func(method, path string) int {
		req, _ := http.NewRequest(method, base+path, bytes.NewReader(body(99)))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status(http.MethodGet, "/readyz"); got != 503 {
		t.Errorf("/readyz without NATS = %d; want 503", got)
	}
	if got := status(http.MethodPost, "/callbacks/"+token); got != 503 {
		t.Errorf("POST without NATS = %d; want 503", got)
	}
	ns.Restart()
	eventstest.WaitFor(t, 60*time.Second, "/readyz 200 after NATS came up", func() bool { return status(http.MethodGet, "/readyz") == 200 })
	if got := status(http.MethodPost, "/callbacks/"+token); got != 200 {
		t.Errorf("POST after NATS came up = %d; want 200", got)
	}
	// Each connection retries on its own backoff; /readyz is 200 as soon as
	// one is up (publishes skip one that is down). Shut down once both are
	// up, so that both are drained.
	connected := regexp.MustCompile(`"msg":"nats connected".*"nats_conn":(\d+)`)
	eventstest.WaitFor(t, 30*time.Second, "both NATS connections up", func() bool {
		seen := map[string]bool{}
		for _, m := range connected.FindAllStringSubmatch(stderr.String(), -1) {
			seen[m[1]] = true
		}
		return seen["1"] && seen["2"]
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run = %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return")
	}
}

// TestNATSPoolReconnectsAndDrainsEveryConnection: every connection of the
// pool connects, reconnects after an outage (each asking for the stream to
// be ensured again), and drain closes all of them.
func TestNATSPoolReconnectsAndDrainsEveryConnection(t *testing.T) {
	ns := eventstest.Start(t)
	var connects atomic.Int64
	pool, err := connectPool(ns.URL(), 3, slog.New(slog.DiscardHandler), func() { connects.Add(1) }, func() bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.close)
	connected := func() int {
		n := 0
		for _, nc := range pool.conns {
			if nc.IsConnected() {
				n++
			}
		}
		return n
	}
	eventstest.WaitFor(t, 10*time.Second, "3 connections and 3 connect callbacks", func() bool { return connected() == 3 && connects.Load() >= 3 })

	ns.Stop()
	eventstest.WaitFor(t, 10*time.Second, "every connection to see the outage", func() bool { return connected() == 0 })
	ns.Restart()
	eventstest.WaitFor(t, 30*time.Second, "every connection to reconnect and ask for the stream", func() bool { return connected() == 3 && connects.Load() >= 6 })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pool.drain(ctx); err != nil {
		t.Fatalf("drain = %v; want nil", err)
	}
	for i, nc := range pool.conns {
		if !nc.IsClosed() {
			t.Errorf("connection %d is not closed after drain", i+1)
		}
	}
}

// TestNATSPoolDrainWhileNATSIsDown: draining while the server is away
// closes every connection at once and says so for each.
func TestNATSPoolDrainWhileNATSIsDown(t *testing.T) {
	ns := eventstest.Start(t)
	pool, err := connectPool(ns.URL(), 2, slog.New(slog.DiscardHandler), func() {}, func() bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.close)
	eventstest.WaitFor(t, 10*time.Second, "both connections", func() bool { return pool.conns[0].IsConnected() && pool.conns[1].IsConnected() })
	ns.Stop()
	eventstest.WaitFor(t, 10*time.Second, "both connections to see the outage", func() bool {
		return !pool.conns[0].IsConnected() && !pool.conns[1].IsConnected()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = pool.drain(ctx)
	for _, want := range []string{"connection 1", "connection 2"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("drain while NATS is down = %v; want an error naming %s", err, want)
		}
	}
	for i, nc := range pool.conns {
		if !nc.IsClosed() {
			t.Errorf("connection %d is not closed after drain", i+1)
		}
	}
}
