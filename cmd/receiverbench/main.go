// Command receiverbench measures the receiver against a naive baseline under
// the same load, on this machine, over loopback HTTP.
//
//	go run ./cmd/receiverbench -duration 20s -conns 64
//
// It starts an embedded nats-server with JetStream (file storage in a temp
// dir, removed at the end) and two HTTP servers on 127.0.0.1:
//
//   - receiver: the real handler stack (package intake: token, content
//     type, bounded read, envelope validation, content hash, headers,
//     metrics, synchronous publish with Nats-Msg-Id, 200 after the PubAck);
//   - baseline: an Echo handler that only reads the body and publishes it
//     synchronously to its own file-storage stream, then answers 200.
//
// Each gets its own stream with the same limits. The receiver publishes on
// -receiver-conns NATS connections (default events.DefaultPublishConns, as
// cmd/receiver does), the baseline on one. The load is -conns keep-alive
// connections each sending unique, valid ORDER_PAY_SUCCESS envelopes back
// to back. The targets take turns in -slice long slices (B R R B B R …)
// until each had -duration of load, so that other work on a shared machine
// hits both alike. Latencies are per request, client side; percentiles are
// nearest-rank over every successful request.
//
// It prints requests/s, p50, p99, p99.9, max, process CPU per request,
// read- and write-type system calls per request (from /proc/self/io; they
// show how well socket I/O is batched), heap allocations per request and GC
// cycles per 10,000 requests (runtime/metrics) for each target, and the
// ratios: over the whole run, and as the median of the ratios of each pair
// of adjacent slices, which is less swayed by a burst of other work on a
// shared machine. CPU per request (getrusage around each slice) is the
// steadiest figure on a busy machine; throughput follows it when the cores
// are saturated, and also depends on how much of the work can run in
// parallel when they are not.
// "stored" can exceed the OK answers by the requests cut off at the end of a
// slice (stored, but the client had stopped waiting).
//
// Flags: -duration (measured load per target), -slice, -conns, -warmup,
// -publish-timeout, -receiver-conns, -duplicates (both streams' duplicate
// window), -cpuprofile PREFIX, -only baseline|receiver and -slicelog FILE
// (profiling).
// -cpuprofile writes one CPU profile per measured slice,
// PREFIX-<target>-<slice>.prof, so that each target's profile covers only
// its own slices and both were taken under the same background load; pprof
// merges the files it is given:
//
//	go tool pprof -top -cum PREFIX-receiver-*.prof
//
// Divide by the target's ok= count for figures per request (the targets
// serve different numbers of requests, so -diff_base totals mislead).
//
// Go's profiler does not see the kernel side (socket writes, page faults,
// scheduling). For that, record the whole process with perf and split the
// samples by target with the slice log, whose times are CLOCK_MONOTONIC:
//
//	perf record -k CLOCK_MONOTONIC -g -o perf.data ./receiverbench -slicelog slices.tsv …
//	perf record -k CLOCK_MONOTONIC -g -e 'syscalls:sys_enter_write*' … (calls, not time)
//
// Each line of the slice log is target, slice number, start and end
// (nanoseconds), OK answers, process CPU (nanoseconds) and GC cycles, tab
// separated; `perf script -F time,ip,sym --ns` gives each sample's time on
// the same clock.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/callback/intake"
	"github.com/refundhub/refundhub/internal/envconfig"
	"github.com/refundhub/refundhub/internal/events"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "receiverbench:", err)
		os.Exit(1)
	}
}

const token = "bench-token-0123456789abcdef"

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("receiverbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	duration := fs.Duration("duration", 10*time.Second, "measured load per target (max 5m)")
	slice := fs.Duration("slice", time.Second, "the targets take turns in slices this long, so both see the same background load")
	conns := fs.Int("conns", 64, "concurrent keep-alive connections (max 512)")
	warmup := fs.Duration("warmup", 2*time.Second, "warm-up load per target first (not measured)")
	publishWait := fs.Duration("publish-timeout", events.DefaultPublishWait, "receiver publish timeout")
	receiverConns := fs.Int("receiver-conns", events.DefaultPublishConns, "NATS connections the receiver publishes on (RECEIVER_NATS_CONNS; max 16)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of each measured slice to PREFIX-<target>-<slice>.prof")
	only := fs.String("only", "", "measure only this target (baseline or receiver); for profiling")
	dupWindow := fs.Duration("duplicates", events.DefaultDuplicates, "duplicate window of both streams")
	sliceLog := fs.String("slicelog", "", "append one line per measured slice to this file (target, slice, start and end in CLOCK_MONOTONIC ns, ok, CPU ns, GC cycles), to split a whole-process `perf record -k CLOCK_MONOTONIC` by target")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *duration <= 0 || *duration > 5*time.Minute || *slice < 100*time.Millisecond || *slice > *duration || *conns < 1 || *conns > 512 || *receiverConns < 1 || *receiverConns > 16 || *warmup < 0 || *warmup > time.Minute {
		return errors.New("flags out of range (see -h)")
	}

	dir, err := os.MkdirTemp("", "receiverbench-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ns, err := server.NewServer(&server.Options{ServerName: "bench", Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		return fmt.Errorf("nats server: %w", err)
	}
	go ns.Start()
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	if !ns.ReadyForConnections(10 * time.Second) {
		return errors.New("nats server not ready")
	}
	natsURL := ns.ClientURL()

	// Receiver: the real stack, on as many connections as cmd/receiver uses.
	var rconns []*nats.Conn
	for range *receiverConns {
		nc, err := nats.Connect(natsURL, events.ConnectOptions("bench-receiver")...)
		if err != nil {
			return err
		}
		defer nc.Close()
		rconns = append(rconns, nc)
	}
	pub, err := events.NewPooledPublisher(rconns, *publishWait)
	if err != nil {
		return err
	}
	scfg := events.DefaultStreamConfig()
	scfg.Duplicates = *dupWindow
	rstream, err := events.EnsureStream(ctx, pub.JetStream(), scfg)
	if err != nil {
		return err
	}
	// The one logging set-up of the commands (durations as text), in JSON:
	// the report on stdout is the output; this is only the receiver's log.
	logger := envconfig.LogConfig{JSON: true, Level: slog.LevelInfo}.Logger(stderr)
	rsrv, err := intake.New(intake.Config{Token: token}, pub,
		func(context.Context) error { return nil }, logger)
	if err != nil {
		return err
	}
	rURL, stopR, err := serve(rsrv.Handler())
	if err != nil {
		return err
	}
	defer stopR()

	// Baseline: read the body, publish it synchronously, answer 200.
	bnc, err := nats.Connect(natsURL, nats.Name("bench-baseline"))
	if err != nil {
		return err
	}
	defer bnc.Close()
	bjs, err := jetstream.New(bnc)
	if err != nil {
		return err
	}
	bcfg := scfg.JetStream()
	bcfg.Name, bcfg.Subjects = "BASELINE", []string{"baseline.>"}
	bstream, err := bjs.CreateOrUpdateStream(ctx, bcfg)
	if err != nil {
		return err
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.POST("/callbacks/:token", func(c echo.Context) error {
		body, err := io.ReadAll(c.Request().Body)
		if err != nil {
			return err
		}
		if _, err := bjs.Publish(c.Request().Context(), "baseline.callbacks", body); err != nil {
			return echo.NewHTTPError(http.StatusServiceUnavailable, err.Error())
		}
		return c.JSON(http.StatusOK, map[string]any{"code": 200, "msg": "success"})
	})
	bURL, stopB, err := serve(e)
	if err != nil {
		return err
	}
	defer stopB()

	fmt.Fprintf(stdout, "receiverbench: %d conns, %s measured per target in %s slices, GOMAXPROCS=%d, NumCPU=%d, %s\n",
		*conns, *duration, *slice, runtime.GOMAXPROCS(0), runtime.NumCPU(), runtime.Version())
	fmt.Fprintln(stdout, "load generator, receiver, baseline and nats-server share this process and machine")

	names := [2]string{"baseline", "receiver"}
	urls := [2]string{bURL, rURL}
	var clients [2]*http.Client
	for i := range clients {
		tr := &http.Transport{MaxIdleConns: *conns, MaxIdleConnsPerHost: *conns, MaxConnsPerHost: *conns, IdleConnTimeout: time.Minute}
		defer tr.CloseIdleConnections()
		clients[i] = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}
	var seq atomic.Uint64
	var warmOK [2]int
	if *warmup > 0 {
		for i := range urls {
			res := load(ctx, clients[i], urls[i], *conns, *warmup, &seq)
			warmOK[i] = res.okTotal
		}
	}
	var sliceOut io.Writer = io.Discard
	if *sliceLog != "" {
		f, err := os.OpenFile(*sliceLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		sliceOut = f
	}
	var all [2]result
	var minRPS, maxRPS [2]float64
	var pairTput, pairCPU []float64 // receiver/baseline per pair of adjacent slices
	nSlices := int((*duration + *slice - 1) / *slice)
	for n := range nSlices {
		var pair [2]*result
		order := []int{0, 1}
		if n%2 == 1 {
			order = []int{1, 0} // alternate who goes first
		}
		for _, i := range order {
			if *only != "" && *only != names[i] {
				continue
			}
			stopProfile, err := startProfile(*cpuProfile, names[i], n)
			if err != nil {
				return err
			}
			cpu0, io0, gc0, t0 := cpuTime(), ioCalls(), gcStats(), monotonicNow()
			res := load(ctx, clients[i], urls[i], *conns, *slice, &seq)
			res.cpu = cpuTime() - cpu0
			t1, io1 := monotonicNow(), ioCalls()
			res.reads, res.writes = io1.reads-io0.reads, io1.writes-io0.writes
			gc1 := gcStats()
			res.gc = gcCounts{gc1.cycles - gc0.cycles, gc1.allocs - gc0.allocs, gc1.allocBytes - gc0.allocBytes}
			fmt.Fprintf(sliceOut, "%s\t%d\t%d\t%d\t%d\t%d\t%d\n", names[i], n, t0, t1, res.okTotal, res.cpu.Nanoseconds(), res.gc.cycles)
			if err := stopProfile(); err != nil {
				return err
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			rps := res.rps()
			if n == 0 || rps < minRPS[i] {
				minRPS[i] = rps
			}
			if rps > maxRPS[i] {
				maxRPS[i] = rps
			}
			all[i].merge(res)
			pair[i] = res
		}
		if b, r := pair[0], pair[1]; b != nil && r != nil && b.okTotal > 0 && r.okTotal > 0 {
			pairTput = append(pairTput, r.rps()/b.rps())
			pairCPU = append(pairCPU, (float64(r.cpu)/float64(r.okTotal))/(float64(b.cpu)/float64(b.okTotal)))
		}
	}
	for i := range all {
		fmt.Fprintf(stdout, "%-8s %s  (slices: %.0f-%.0f req/s)\n", names[i], &all[i], minRPS[i], maxRPS[i])
	}
	b, rr := &all[0], &all[1]
	fmt.Fprintf(stdout, "ratio receiver/baseline: throughput %.2fx, p50 %.2fx, p99 %.2fx, p99.9 %.2fx, cpu/req %.2fx (ratios other than throughput: < 1 is better)\n",
		rr.rps()/b.rps(), ratio(rr.pct(50), b.pct(50)), ratio(rr.pct(99), b.pct(99)), ratio(rr.pct(99.9), b.pct(99.9)),
		(float64(rr.cpu)/float64(max(rr.okTotal, 1)))/(float64(b.cpu)/float64(max(b.okTotal, 1))))
	if len(pairTput) > 0 {
		fmt.Fprintf(stdout, "paired slices (%d pairs, receiver/baseline, median [min-max]): throughput %.2fx [%.2f-%.2f], cpu/req %.2fx [%.2f-%.2f]\n",
			len(pairTput), median(pairTput), slices.Min(pairTput), slices.Max(pairTput), median(pairCPU), slices.Min(pairCPU), slices.Max(pairCPU))
	}

	// Sanity: every 200 is a stored message.
	ri, err := rstream.Info(ctx)
	if err != nil {
		return err
	}
	bi, err := bstream.Info(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "stored: receiver stream %d msgs (%d OK answers incl. warm-up), baseline stream %d msgs (%d OK answers incl. warm-up)\n",
		ri.State.Msgs, rr.okTotal+warmOK[1], bi.State.Msgs, b.okTotal+warmOK[0])
	return nil
}

// startProfile starts a CPU profile of one slice, written to
// prefix-<target>-<slice>.prof (see the package doc). An empty prefix
// profiles nothing.
func startProfile(prefix, target string, slice int) (stop func() error, err error) {
	if prefix == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(fmt.Sprintf("%s-%s-%03d.prof", prefix, target, slice))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}

// median of v (v is reordered).
func median(v []float64) float64 {
	slices.Sort(v)
	if n := len(v); n%2 == 1 {
		return v[n/2]
	} else if n > 0 {
		return (v[n/2-1] + v[n/2]) / 2
	}
	return 0
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func serve(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String() + "/callbacks/" + token, func() { srv.Close() }, nil
}

type result struct {
	cpu     time.Duration // process CPU (user+sys) while this target was loaded
	reads   uint64        // read-type system calls of the process meanwhile
	writes  uint64        // write-type system calls (pwrite to the store included)
	gc      gcCounts      // GC cycles and heap allocations of the process meanwhile
	lat     []time.Duration
	okTotal int
	errs    int
	elapsed time.Duration
}

func (r *result) merge(o *result) {
	r.lat = append(r.lat, o.lat...)
	r.okTotal += o.okTotal
	r.errs += o.errs
	r.elapsed += o.elapsed
	r.cpu += o.cpu
	r.reads += o.reads
	r.writes += o.writes
	r.gc.cycles += o.gc.cycles
	r.gc.allocs += o.gc.allocs
	r.gc.allocBytes += o.gc.allocBytes
}

// ioCounts are the process's read- and write-type system calls so far
// (/proc/self/io syscr and syscw; zero where that file does not exist).
type ioCounts struct{ reads, writes uint64 }

// ioCalls reads the counts.
func ioCalls() ioCounts {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return ioCounts{}
	}
	var c ioCounts
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ": ")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "syscr":
			c.reads = n
		case "syscw":
			c.writes = n
		}
	}
	return c
}

// gcCounts are the process's completed GC cycles and heap allocations so
// far (runtime/metrics: cheap, no stop-the-world).
type gcCounts struct{ cycles, allocs, allocBytes uint64 }

// gcStats reads the counts.
func gcStats() gcCounts {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}, {Name: "/gc/heap/allocs:objects"}, {Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	var v [3]uint64
	for i := range s {
		if s[i].Value.Kind() == metrics.KindUint64 {
			v[i] = s[i].Value.Uint64()
		}
	}
	return gcCounts{v[0], v[1], v[2]}
}

// cpuTime is this process's user+system CPU time so far. The whole process
// (load generator, HTTP server, NATS client and server) works for the one
// target being loaded, so CPU per request compares the targets' total cost
// even when other processes on the machine make throughput noisy.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (r *result) rps() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.okTotal) / r.elapsed.Seconds()
}

// pct is the nearest-rank percentile of successful requests' latencies.
func (r *result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	if !slices.IsSorted(r.lat) {
		slices.Sort(r.lat)
	}
	i := int(p/100*float64(len(r.lat))+0.5) - 1
	i = max(0, min(i, len(r.lat)-1))
	return r.lat[i]
}

func (r *result) String() string {
	ms := func(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) + "ms" }
	cpu, rd, wr, objs, kb, gcs := 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
	if n := float64(r.okTotal); n > 0 {
		cpu = float64(r.cpu.Microseconds()) / n
		rd, wr = float64(r.reads)/n, float64(r.writes)/n
		objs, kb = float64(r.gc.allocs)/n, float64(r.gc.allocBytes)/n/1024
		gcs = float64(r.gc.cycles) / n * 1e4
	}
	return fmt.Sprintf("ok=%d errors=%d  %8.0f req/s  p50=%s p99=%s p99.9=%s max=%s  cpu=%.0fµs/req  syscalls/req: %.2f r %.2f w  allocs/req: %.0f, %.1f KiB; GCs per 10k req: %.1f",
		r.okTotal, r.errs, r.rps(), ms(r.pct(50)), ms(r.pct(99)), ms(r.pct(99.9)), ms(r.pct(100)), cpu, rd, wr, objs, kb, gcs)
}

// load runs conns workers posting unique envelopes to url for d.
func load(ctx context.Context, client *http.Client, url string, conns int, d time.Duration, seq *atomic.Uint64) *result {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	res := make([]result, conns)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range conns {
		wg.Go(func() {
			r := &res[w]
			var body []byte
			for ctx.Err() == nil {
				body = envelope(body[:0], seq.Add(1))
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
				if err != nil {
					r.errs++
					continue
				}
				req.Header.Set("Content-Type", "application/json")
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						r.errs++
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					r.errs++
					continue
				}
				r.lat = append(r.lat, time.Since(t0))
				r.okTotal++
			}
		})
	}
	wg.Wait()
	out := &result{elapsed: time.Since(start)}
	for i := range res {
		out.lat = append(out.lat, res[i].lat...)
		out.okTotal += res[i].okTotal
		out.errs += res[i].errs
	}
	return out
}

// envelope appends a valid ORDER_PAY_SUCCESS push (shape of reference §3.2)
// whose orderId and timestamp are unique per n, so no two requests dedupe.
func envelope(b []byte, n uint64) []byte {
	id := 3305075341149134260 + n
	ts := uint64(1779263269913) + n
	b = append(b, `{"messageType":"ORDER_PAY_SUCCESS","messageBody":"{\"orderId\":\"`...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, `\",\"orderNo\":\"PO202605200001\",\"orderStatus\":\"WAITING_FOR_SENT\",\"payStatus\":2,\"totalAmount\":10000,\"shippingFee\":500,\"productAmount\":9500,\"refundAmount\":0,\"refundStatus\":null,\"closeReason\":null,\"tbCreateTime\":\"2026-05-20 15:40:00\",\"payTime\":\"2026-05-20 15:41:00\"}","messagePlatform":1,"timestamp":"`...)
	b = strconv.AppendUint(b, ts, 10)
	b = append(b, `"}`...)
	return b
}
