package refundhub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/casestore/casestoretest"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/events/eventstest"
	"github.com/refundhub/refundhub/internal/opcommands"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
	"github.com/refundhub/refundhub/internal/testenv/pgtest"
	"github.com/refundhub/refundhub/internal/testenv/syncbuf"
)

// TestSeveralHosts runs the product as it runs across hosts: a 3-node
// JetStream cluster (embedded nodes, R3 streams), two receivers behind a
// round-robin balancer, two worker processes in separate working
// directories on one case store, and the sandbox pushing its callbacks to
// the balancer. The store is PostgreSQL (DB_URL), as workers on several
// hosts need, and SQLite (DB_PATH, both workers on this host) too. Under a
// load of requests on both platforms it kills one worker with SIGKILL and
// stops one NATS node, then starts both again; on PostgreSQL the database
// then crashes (an immediate shutdown) and restarts 2 s later.
//
// Required: no duplicate submission on the platform; every case terminal
// or parked with a reason; every callback the receivers answered 200 for
// (every message in the callback stream) applied exactly once, as the
// worker's inbox records; the sandbox has no push left undelivered. The
// wall time and the recovery times are logged.
func TestSeveralHosts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries and runs a NATS cluster with two workers and two receivers")
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "./cmd/sandbox", "./cmd/receiver", "./cmd/worker")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	casestoretest.Each(t, func(t *testing.T, b casestoretest.Backend) {
		if b.Name == "postgres" {
			// A cluster of its own, durable as in production: the run
			// crashes and restarts it.
			db := pgtest.Start(t, pgtest.Options{Durable: true})
			store := db.NewDatabase(t)
			severalHosts(t, bin, store, []string{"DB_URL=" + store}, db)
			return
		}
		store := b.Fresh(t)
		severalHosts(t, bin, store, []string{"DB_PATH=" + store}, nil)
	})
}

// severalHosts is TestSeveralHosts on one store: store is where it lives
// (a file or a URL), storeEnv how the workers are told, db its PostgreSQL
// server (nil: SQLite), which the run crashes too.
func severalHosts(t *testing.T, bin, store string, storeEnv []string, db *pgtest.Cluster) {
	started := time.Now()
	cluster := eventstest.StartCluster(t, 3)
	natsURLs := cluster.URLs()

	const (
		token = "multihost-callback-token-0123456789"
		key   = "multihost-key"
		sec   = "multihost-secret"
	)
	lb := &balancer{}
	lbSrv := httptest.NewServer(lb)
	defer lbSrv.Close()

	sbAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	sb := startProc(t, "sandbox", filepath.Join(bin, "sandbox"), t.TempDir(),
		"SANDBOX_ADDR="+sbAddr, "UPSTREAM_ACCESS_KEY="+key, "UPSTREAM_ACCESS_SECRET="+sec,
		"CALLBACK_URL="+lbSrv.URL+"/callbacks/"+token, "SANDBOX_SELLER_DELAY=300ms", "SANDBOX_RECEIVE_DELAY=300ms",
		"SANDBOX_PUSH_RETRY_INTERVAL=500ms", "SANDBOX_PUSH_RETRIES=20", "SANDBOX_LATENCY=20ms", "SANDBOX_SEED=7")
	sb.waitHTTP(t, "http://"+sbAddr+"/_sandbox/healthz")

	streamEnv := []string{"NATS_URL=" + natsURLs, "CALLBACK_STREAM_REPLICAS=3", "CALLBACK_TOKEN=" + token, "LOG_LEVEL=info"}
	for i := range 2 {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		r := startProc(t, fmt.Sprintf("receiver%d", i+1), filepath.Join(bin, "receiver"), t.TempDir(),
			append([]string{"RECEIVER_ADDR=" + addr}, streamEnv...)...)
		r.waitHTTP(t, "http://"+addr+"/readyz")
		lb.add("http://" + addr)
	}
	workerEnv := append([]string{"UPSTREAM_BASE_URL=http://" + sbAddr, "UPSTREAM_ACCESS_KEY=" + key,
		"UPSTREAM_ACCESS_SECRET=" + sec, "UPSTREAM_USER_ID=multihost", "UPSTREAM_TIMEOUT=2s",
		"UPSTREAM_RATE_LIMIT=2000", "UPSTREAM_RATE_BURST=100", "WORKER_CONCURRENCY=8",
		"WORKER_ACK_WAIT=5s", "WORKER_MAX_DELIVER=200", "WORKER_RETRY_BASE=100ms", "WORKER_RETRY_MAX=1s",
		"WORKER_TIMER_INTERVAL=100ms", "WORKER_RECONCILE_INTERVAL=1s", "WORKER_RECONCILE_AGE=3s",
		"WORKER_STEP_TIMEOUT=3s", "WORKER_LEASE_TTL=5s", "WORKER_SHUTDOWN_TIMEOUT=3s",
		// A 1688 create cut off by the kill before it reached the platform
		// cannot be shown absent (1688 has no query by order): the worker
		// waits this long for its refund callback, then parks the case
		// (intent_unverifiable). The default, 1h, would outlast the test.
		"WORKER_INTENT_IN_FLIGHT=1s", "WORKER_INTENT_GRACE=8s"}, append(streamEnv, storeEnv...)...)
	workerDirs := []string{t.TempDir(), t.TempDir()}
	workerAddrs := []string{fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	startWorker := func(i int) *proc {
		w := startProc(t, fmt.Sprintf("worker%d", i+1), filepath.Join(bin, "worker"), workerDirs[i],
			append([]string{"WORKER_METRICS_ADDR=" + workerAddrs[i]}, workerEnv...)...)
		w.waitHTTP(t, "http://"+workerAddrs[i]+"/readyz")
		return w
	}
	workers := []*proc{startWorker(0), startWorker(1)}
	t.Logf("stack up in %s: 3 NATS nodes, sandbox, 2 receivers, 2 workers", time.Since(started).Round(time.Millisecond))

	nc, err := nats.Connect(natsURLs, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// The load: requests on both platforms, published as refundctl does.
	const perPlatform = 40
	var ids []string
	// try runs one JetStream call with its own short deadline, so that a
	// call made while the cluster elects a leader fails and is tried
	// again rather than hanging the test.
	try := func(call func(context.Context) error) bool {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		return call(cctx) == nil
	}
	publish := func(c refundflow.Command) {
		t.Helper()
		eventstest.WaitFor(t, 30*time.Second, "command "+c.ID+" stored", func() bool {
			return try(func(ctx context.Context) error { _, err := opcommands.Publish(ctx, js, c); return err })
		})
		ids = append(ids, c.ID)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	for i := range perPlatform {
		tbOrder, tbSub, abOrder := fmt.Sprintf("71000000000%05d", i), fmt.Sprintf("72000000000%05d", i), fmt.Sprintf("73000000000%05d", i)
		createOrder(t, sbAddr, sandbox.CreateOrderRequest{Platform: sandbox.PlatformTaobao, OrderID: tbOrder,
			SubOrders: []sandbox.SubOrder{{SubOrderID: tbSub, Amount: 10000}}})
		createOrder(t, sbAddr, sandbox.CreateOrderRequest{Platform: sandbox.Platform1688, OrderID: abOrder, Amount: 10000})
		publish(refundflow.Command{ID: fmt.Sprintf("multihost-tb-%03d", i), Kind: refundflow.InputRequestRefund,
			Platform: refundflow.PlatformTaobao, OrderID: tbOrder, SubOrderID: tbSub,
			Request:  &refundflow.Request{GoodsStatus: "1", ReasonID: 1001, Description: "不想要了"},
			Operator: "multihost", IssuedAt: now})
		publish(refundflow.Command{ID: fmt.Sprintf("multihost-ab-%03d", i), Kind: refundflow.InputRequestRefund,
			Platform: refundflow.Platform1688, OrderID: abOrder,
			Request:  &refundflow.Request{GoodsStatus: "refundWaitSellerSend", ReasonID: 20001, Amount: 3000, Description: "不想要了"},
			Operator: "multihost", IssuedAt: now})
	}

	// A probe stream, R3 like the product's, placed while all three nodes
	// are up (an R3 stream cannot be placed on two).
	probe := jetstream.StreamConfig{Name: "MULTIHOST_PROBE", Subjects: []string{"multihost.probe"}, Replicas: 3}
	eventstest.WaitFor(t, 30*time.Second, "the probe stream", func() bool {
		return try(func(ctx context.Context) error { _, err := js.CreateOrUpdateStream(ctx, probe); return err })
	})

	// Mid-run, once a quarter of the refunds are submitted: a worker host
	// and a NATS node die.
	eventstest.WaitFor(t, 60*time.Second, "a quarter of the refunds submitted", func() bool {
		return len(sandboxStats(t, sbAddr).RefundSubmissions) >= perPlatform/2
	})
	workers[0].kill()
	killedAt := time.Now()
	cluster.Stop(0)
	// NATS recovery: how long until a publish to an R3 stream is
	// acknowledged again with a node down.
	eventstest.WaitFor(t, 30*time.Second, "a publish acknowledged with a node down", func() bool {
		return try(func(ctx context.Context) error { _, err := js.Publish(ctx, "multihost.probe", []byte("x")); return err })
	})
	natsRecovery := time.Since(killedAt)
	restartAt := time.Now()
	cluster.Restart(0)
	nodeBack := time.Since(restartAt)
	restartAt = time.Now()
	workers[0] = startWorker(0)
	workerBack := time.Since(restartAt)
	// Then the database crashes, with cases still in flight, and is back
	// 2 s later (the outage, not a wait): the workers hold what they have.
	var dbDown, dbBack time.Duration
	if db != nil {
		crashedAt := time.Now()
		db.Crash(t)
		<-time.After(2 * time.Second)
		restartAt = time.Now()
		db.Restart(t)
		dbDown, dbBack = time.Since(crashedAt), time.Since(restartAt)
	}

	// Every case terminal, or parked with a reason.
	st := openStore(t, store)
	terminal := map[string]bool{}
	for _, s := range casestore.TerminalStates() {
		terminal[s] = true
	}
	states := map[string]int{}
	var unsettled []string // what the last look found still moving
	var parked []casestore.Case
	settledAll := func() bool {
		clear(states)
		unsettled, parked = unsettled[:0], parked[:0]
		for _, id := range ids {
			c, err := st.CaseOpenedBy(ctx, id)
			if err != nil {
				unsettled = append(unsettled, fmt.Sprintf("command %s: %v", id, err))
				continue
			}
			if !terminal[c.State] && !(c.State == string(refundflow.StateNeedsAttention) && c.AttentionCode != "") {
				owner, until, _ := st.LeaseUntil(ctx, c.ID)
				unsettled = append(unsettled, fmt.Sprintf("case %d %s (refund %q, next wake %s, updated %s, lease %q until %s)",
					c.ID, c.State, c.RefundID, c.NextWakeAt.Format(time.RFC3339Nano), c.UpdatedAt.Format(time.RFC3339Nano), owner, until.Format(time.RFC3339Nano)))
				continue
			}
			states[c.State]++
			if c.State == string(refundflow.StateNeedsAttention) {
				parked = append(parked, c)
			}
		}
		return len(unsettled) == 0
	}
	for deadline := time.Now().Add(3 * time.Minute); !settledAll(); {
		if time.Now().After(deadline) {
			for _, u := range unsettled {
				tl, _ := st.Timeline(ctx, caseIDOf(u))
				t.Logf("unsettled: %s", u)
				for _, e := range tl {
					t.Logf("    %s %s %s", e.At.Format(time.RFC3339Nano), e.Kind, e.Summary)
				}
			}
			t.Fatalf("%d cases not terminal or parked after 3 minutes", len(unsettled))
		}
		<-time.After(50 * time.Millisecond)
	}
	settled := time.Since(killedAt)

	// Every push delivered (answered 200 by a receiver) …
	eventstest.WaitFor(t, time.Minute, "every push delivered", func() bool {
		cs := sandboxStats(t, sbAddr).Callbacks
		return cs.Pending == 0
	})
	sst := sandboxStats(t, sbAddr)
	if sst.Callbacks.GaveUp != 0 || sst.Callbacks.Delivered == 0 {
		t.Errorf("sandbox pushes: %+v; want all delivered, none given up", sst.Callbacks)
	}
	if sst.DuplicateSubmissions != 0 {
		t.Errorf("duplicate_submissions = %d; want 0", sst.DuplicateSubmissions)
	}
	for k, n := range sst.RefundSubmissions {
		if n != 1 {
			t.Errorf("refund submissions %s = %d; want exactly 1", k, n)
		}
	}
	// The seller agrees to every refund: a submitted one succeeds. A case
	// parked instead must be a side effect the kill cut off and the
	// platform could not confirm.
	if got := len(sst.RefundSubmissions); got < states[string(refundflow.StateSucceeded)] {
		t.Errorf("%d refunds submitted for %d succeeded cases", got, states[string(refundflow.StateSucceeded)])
	}
	for _, c := range parked {
		if c.AttentionCode != refundflow.CodeUnverifiable {
			t.Errorf("case %d parked %s (%s); want only a side effect the kill cut off (%s)", c.ID, c.AttentionCode, c.AttentionMessage, refundflow.CodeUnverifiable)
		}
	}
	// … and every callback in the stream applied once: the inbox holds
	// its message id (it is the inbox's key, so never twice).
	msgIDs := callbackMsgIDs(ctx, t, js)
	if len(msgIDs) == 0 {
		t.Fatal("no callback in the stream")
	}
	eventstest.WaitFor(t, time.Minute, "every callback in the worker's inbox", func() bool {
		for _, id := range msgIDs {
			if seen, err := st.InboxSeen(ctx, id); err != nil || !seen {
				return false
			}
		}
		return true
	})
	t.Logf("%d cases %v; %d callbacks delivered, %d in the stream, all applied once; 0 duplicate submissions",
		len(ids), states, sst.Callbacks.Delivered, len(msgIDs))
	t.Logf("wall time %s; after the kills: a publish acknowledged again in %s, the node back in %s, the worker back in %s, every case settled %s after the kills",
		time.Since(started).Round(time.Millisecond), natsRecovery.Round(time.Millisecond), nodeBack.Round(time.Millisecond),
		workerBack.Round(time.Millisecond), settled.Round(time.Millisecond))
	if db != nil {
		t.Logf("the database crashed after that, down %s, accepting connections again %s after its restart",
			dbDown.Round(time.Millisecond), dbBack.Round(time.Millisecond))
	}
}

// caseIDOf reads the case id back from an unsettled line ("case N …").
func caseIDOf(line string) int64 {
	var id int64
	_, _ = fmt.Sscanf(line, "case %d", &id)
	return id
}

// openStore opens the case store the workers share (a file or a URL),
// read-only, as refundctl does.
func openStore(t *testing.T, store string) *casestore.Store {
	t.Helper()
	st, err := casestore.OpenReadOnly(context.Background(), store, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// callbackMsgIDs reads the message id of every callback in the stream
// (the receiver's content hash), with an ordered consumer, up to the
// stream's last sequence when it starts.
func callbackMsgIDs(ctx context.Context, t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	// Just after a NATS node's restart the cluster may still be electing
	// the stream's leader (or the meta leader): JetStream's API then
	// answers "no responders" or times out for a moment. Read again until
	// it answers, as the workers do.
	deadline := time.Now().Add(30 * time.Second)
	var ids []string
	eventstest.WaitFor(t, 30*time.Second, "the callback stream read whole", func() bool {
		var err error
		if ids, err = readCallbackMsgIDs(ctx, js, deadline); err != nil {
			t.Logf("read the callback stream: %v; again", err)
		}
		return err == nil
	})
	return ids
}

// readCallbackMsgIDs is one pass of callbackMsgIDs.
func readCallbackMsgIDs(ctx context.Context, js jetstream.JetStream, deadline time.Time) ([]string, error) {
	s, err := js.Stream(ctx, events.DefaultStreamName)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	var ids []string
	for seq := uint64(0); seq < info.State.LastSeq; {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("read up to seq %d of %d in 30s", seq, info.State.LastSeq)
		}
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return nil, err
		}
		for m := range batch.Messages() {
			md, err := m.Metadata()
			if err != nil {
				return nil, err
			}
			seq = md.Sequence.Stream
			if !strings.HasPrefix(m.Subject(), "callbacks.") {
				continue // parked.callbacks.>: not applied by design
			}
			id := m.Headers().Get(events.HeaderMsgID)
			if id == "" {
				return nil, fmt.Errorf("callback %s without %s", m.Subject(), events.HeaderMsgID)
			}
			ids = append(ids, id)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, err
		}
	}
	return ids, nil
}

// createOrder creates an order on the sandbox through its admin API, so
// that the ids a request names are the platform's own (an auto-created
// Taobao order would take its sub-order's id, and a refund listed by the
// requested order id would not be found).
func createOrder(t *testing.T, addr string, o sandbox.CreateOrderRequest) {
	t.Helper()
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+addr+"/_sandbox/orders", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("create order %s: HTTP %d %s", o.OrderID, resp.StatusCode, body)
	}
}

func sandboxStats(t *testing.T, addr string) sandbox.Stats {
	t.Helper()
	var st sandbox.Stats
	getJSON(t, "http://"+addr+"/_sandbox/stats", &st)
	return st
}

// balancer spreads requests over the receivers round-robin, as a load
// balancer in front of two hosts does, and tries the next one when one
// does not answer.
type balancer struct {
	mu       sync.Mutex
	backends []string
	next     atomic.Uint64
}

func (b *balancer) add(u string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.backends = append(b.backends, u)
}

func (b *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	b.mu.Lock()
	backends := append([]string(nil), b.backends...)
	b.mu.Unlock()
	start := b.next.Add(1)
	var last error
	for i := range backends {
		u := backends[(int(start)+i)%len(backends)]
		req, err := http.NewRequestWithContext(r.Context(), r.Method, u+r.URL.RequestURI(), bytes.NewReader(body))
		if err != nil {
			last = err
			continue
		}
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			last = err
			continue
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
		resp.Body.Close()
		return
	}
	http.Error(w, fmt.Sprintf("no receiver answered: %v", last), http.StatusBadGateway)
}

// proc is a product binary run as a child process, its output kept for
// the test log.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
}

// lockedBuffer is a log and output sink the test reads while it is written.
type lockedBuffer = syncbuf.Buffer

func startProc(t *testing.T, name, path, dir string, env ...string) *proc {
	t.Helper()
	p := &proc{name: name, out: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(path)
	p.cmd.Dir = dir
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			// The whole log goes to a file that outlives the test.
			f, err := os.CreateTemp("", "refundhub-"+name+"-*.log")
			if err == nil {
				_, _ = f.WriteString(p.out.String())
				_ = f.Close()
				t.Logf("%s's whole output: %s", name, f.Name())
			}
			t.Logf("--- %s output (last 2 KB):\n%s", name, tail(p.out.String(), 2048))
		}
	})
	return p
}

// waitHTTP waits until url answers 200, failing at once if the process
// exits.
func (p *proc) waitHTTP(t *testing.T, url string) {
	t.Helper()
	eventstest.WaitFor(t, 60*time.Second, p.name+" ready ("+url+")", func() bool {
		select {
		case <-p.done:
			t.Fatalf("%s exited early:\n%s", p.name, tail(p.out.String(), 4096))
		default:
		}
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// kill is a host's death: SIGKILL, no drain, no lease release.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop asks the process to drain (SIGTERM) and kills it after 15 s.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.kill()
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
