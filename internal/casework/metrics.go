package casework

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// Metrics are the worker's Prometheus metrics (refundhub_worker_*): what
// the runtime handled, what the engine's steps and the platform's calls
// took, and, read at scrape time, cases by state and the consumers' lag.
// They live on the registry given to NewMetrics, which Handler serves.
type Metrics struct {
	reg            *prometheus.Registry
	stepDuration   *prometheus.HistogramVec
	platformCalls  *prometheus.CounterVec
	platformErrors *prometheus.CounterVec
	messages       *prometheus.CounterVec
	deadLetters    *prometheus.CounterVec
	panics         *prometheus.CounterVec
	reconcileFound prometheus.Counter
	reconcileMoved prometheus.Counter
	timerWakes     prometheus.Counter
	earlier        prometheus.Counter
	sellerMessages *prometheus.CounterVec
	callbackLag    *prometheus.HistogramVec
	callbackVerify *prometheus.HistogramVec
	callCodes      codeLabels // code label values of platformCalls
	errCodes       codeLabels // and of platformErrors, kept apart
	lag            *lagCollector
	state          *stateCollector
}

// NewMetrics registers the worker's metrics on reg, counting cases in store
// at scrape time. It comes before New because the platform client
// (Observe) and the engine (OnStep) report into it as well.
func NewMetrics(reg *prometheus.Registry, store *casestore.Store) (*Metrics, error) {
	m := &Metrics{
		reg: reg,
		stepDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "refundhub_worker_step_duration_seconds",
			Help:    "Platform steps run for cases, by platform, step and outcome (ok, transient, failed).",
			Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 10),
		}, []string{"platform", "step", "outcome"}),
		platformCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "refundhub_worker_platform_calls_total",
			Help: "Platform API call attempts by endpoint and result code (envelope code, HTTP status, or 0 without a response).",
		}, []string{"endpoint", "code"}),
		platformErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "refundhub_worker_platform_errors_total",
			Help: "Failed platform API call attempts by endpoint and code.",
		}, []string{"endpoint", "code"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "refundhub_worker_messages_total",
			Help: "Stream messages handled, by source (callbacks, commands) and result (applied, duplicate, ignored, deferred: waits in the store for its case; retry, dead_letter).",
		}, []string{"source", "result"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "refundhub_worker_dead_letters_total",
			Help: "Messages dead-lettered, by source and reason.",
		}, []string{"source", "reason"}),
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "refundhub_worker_panics_total",
			Help: "Inputs the worker itself failed on (a panic: a bug of this build), by where: message (dead-lettered worker_failed), deferred (the same), wake (the case is not woken again for WORKER_RETRY_MAX), earlier (a command applied ahead of a later one of its case: left to its own delivery, which counts it again as message). The log has each one's stack.",
		}, []string{"where"}),
		reconcileFound: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "refundhub_worker_reconcile_found_total",
			Help: "Open cases the reconciler found not checked on the platform for WORKER_RECONCILE_AGE.",
		}),
		reconcileMoved: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "refundhub_worker_reconcile_moved_total",
			Help: "Cases whose state the reconciler's re-check changed (callbacks that never came).",
		}),
		timerWakes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "refundhub_worker_timer_wakes_total",
			Help: "Case timers fired (platform deadlines, re-checks, stalled steps).",
		}),
		earlier: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "refundhub_worker_commands_applied_first_total",
			Help: "Commands applied ahead of a later command of their case, issued after them, because they were not settled yet (delivered again behind it, or held by another worker process).",
		}),
		sellerMessages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "refundhub_worker_seller_messages_total",
			Help: "New seller messages read on cases' refunds (each also counts in the case's unread messages until an operator reads them).",
		}, []string{"platform"}),
		callbackLag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "refundhub_worker_callback_lag_seconds",
			Help:    "From the receiver taking a callback in (Cb-Received) to the commit that applied it (a refund callback: recorded on its case, before its verification), by platform and outcome (applied, duplicate, ignored, deferred: kept in the store for its case, dead_letter, retry: recorded, its verification retried); about the same figure is on the callback's timeline entry (lagMs).",
			Buckets: lagBuckets,
		}, []string{"platform", "outcome"}),
		callbackVerify: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "refundhub_worker_callback_verify_seconds",
			Help:    "From the receiver taking a refund callback in (Cb-Received) to the commit of the decision made on the platform's view read after it, by platform and outcome; includes that platform read. Not observed for a callback whose verification waited (busy case, failed read).",
			Buckets: lagBuckets,
		}, []string{"platform", "outcome"}),
	}
	m.lag = &lagCollector{consumers: map[string]jetstream.Consumer{}}
	m.state = &stateCollector{store: store}
	for _, c := range []prometheus.Collector{m.stepDuration, m.platformCalls, m.platformErrors, m.messages, m.deadLetters, m.panics,
		m.reconcileFound, m.reconcileMoved, m.timerWakes, m.earlier, m.sellerMessages, m.callbackLag, m.callbackVerify, m.state, m.lag} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register worker metrics: %w", err)
		}
	}
	return m, nil
}

// WatchPlatformRate serves rate, the platform calls per second the
// worker's client allows itself now (apiclient.Client.Rate), as
// refundhub_worker_platform_rate: UPSTREAM_RATE_LIMIT, lower while the
// platform rate-limits the account.
func (m *Metrics) WatchPlatformRate(rate func() float64) error {
	g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "refundhub_worker_platform_rate",
		Help: "Platform calls per second this process allows itself now: UPSTREAM_RATE_LIMIT, lower while the platform rate-limits the account (UPSTREAM_RATE_MIN, UPSTREAM_RATE_RECOVERY).",
	}, rate)
	if err := m.reg.Register(g); err != nil {
		return fmt.Errorf("register worker metrics: %w", err)
	}
	return nil
}

// observeLag observes one callback's lag (refundhub_worker_callback_lag_seconds):
// the engine's figure (refundflow.Message.Lag) when it committed something
// for the callback, else the time until now, just after the commit of its
// inbox row, its wait or its dead letter. platform is the Cb-Platform
// header; anything but the two platforms counts as "other", so a stray
// header cannot grow the series.
//
// A refund callback recorded before a redelivery of it (msg.Deferred, no
// Lag) was measured then and is not measured again; its verification, when
// it committed in this call, is (refundhub_worker_callback_verify_seconds).
func (m *Metrics) observeLag(platform, outcome string, msg *refundflow.Message) {
	if platform != "taobao" && platform != "1688" {
		platform = "other"
	}
	if msg.Verified != 0 {
		m.callbackVerify.WithLabelValues(platform, outcome).Observe(msg.Verified.Seconds())
	}
	lag := msg.Lag
	switch {
	case lag != 0:
	case outcome == "retry" || msg.Deferred:
		return
	default:
		lag = max(time.Since(msg.ReceivedAt), 0)
	}
	m.callbackLag.WithLabelValues(platform, outcome).Observe(lag.Seconds())
}

// lagBuckets are the callback lag histograms' buckets (seconds): fine
// below the 50 ms the target names, coarse up to two hours.
var lagBuckets = []float64{.005, .01, .02, .03, .05, .075, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200}

// OnSellerMessages counts new seller messages; it is
// refundflow.EngineConfig.OnSellerMessages.
func (m *Metrics) OnSellerMessages(p refundflow.Platform, n int) {
	m.sellerMessages.WithLabelValues(string(p)).Add(float64(n))
}

// Observe counts one platform call attempt by endpoint and result code; it
// is apiclient.Config.Observe.
func (m *Metrics) Observe(endpoint string, code int, _ time.Duration, err error) {
	c := m.callCodes.label(strconv.Itoa(code))
	m.platformCalls.WithLabelValues(endpoint, c).Inc()
	if err != nil {
		var ae *apiclient.APIError
		if errors.As(err, &ae) && ae.NestedCode != "" {
			c = m.errCodes.label(ae.NestedCode)
		} else {
			c = m.errCodes.label(c)
		}
		m.platformErrors.WithLabelValues(endpoint, c).Inc()
	}
}

// maxCodeLabels bounds the distinct code label values of each metric (the
// platform's codes and error strings are its to invent); later ones count as
// "other" for the rest of the process's life.
const maxCodeLabels = 64

// codeLabels keeps the platform's result codes usable as label values: a
// code longer than 32 bytes or with characters other than letters, digits,
// '_', '-', '.' and '=', and any new code once maxCodeLabels are in use,
// becomes "other", so the series stay bounded whatever the platform sends.
type codeLabels struct {
	mu   sync.Mutex
	seen map[string]struct{}
}

func (l *codeLabels) label(code string) string {
	if len(code) == 0 || len(code) > 32 {
		return "other"
	}
	for i := 0; i < len(code); i++ {
		switch b := code[i]; {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9', b == '_', b == '-', b == '.', b == '=':
		default:
			return "other"
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.seen[code]; ok {
		return code
	}
	if len(l.seen) >= maxCodeLabels {
		return "other"
	}
	if l.seen == nil {
		l.seen = make(map[string]struct{})
	}
	l.seen[code] = struct{}{}
	return code
}

// OnStep times one engine step by platform, step and outcome; it is
// refundflow.EngineConfig.OnStep.
func (m *Metrics) OnStep(p refundflow.Platform, step refundflow.StepName, outcome string, d time.Duration) {
	m.stepDuration.WithLabelValues(string(p), string(step), outcome).Observe(d.Seconds())
}

var (
	casesDesc = prometheus.NewDesc("refundhub_worker_cases", "Cases by state (all worker processes: read from the database).", []string{"state"}, nil)
	attnDesc  = prometheus.NewDesc("refundhub_worker_cases_attention", "Open cases by attention code: needs_attention reasons, and the flags of cases that go on (waiting_evidence: a side effect not confirmed yet; return_waybill_differs: the platform holds the return under another waybill; inputs_failing: the case's last WORKER_FAILING_FLAG inputs failed), read from the database.", []string{"code"}, nil)
	storeDesc = prometheus.NewDesc("refundhub_worker_store_up", "0 while the worker holds its work because the case store does not answer or cannot write (the database down, restarting, failing over or cut off; its disk full; the figures read from the database are then missing from the scrape), 1 otherwise.", nil, nil)
	deferDesc = prometheus.NewDesc("refundhub_worker_deferred_inputs", "Commands and callbacks waiting in the store for their case, callbacks being verified included (read from the database).", nil, nil)
	lagDesc   = prometheus.NewDesc("refundhub_worker_consumer_pending", "Messages not yet delivered to the durable consumer (consumer lag), by source.", []string{"source"}, nil)
	ackDesc   = prometheus.NewDesc("refundhub_worker_consumer_ack_pending", "Messages delivered and not yet acknowledged, by source.", []string{"source"}, nil)
)

// stateCollector counts cases by state at scrape time, and says whether
// the store answers (storeUp: the worker's gate, once New set it).
type stateCollector struct {
	store   *casestore.Store
	storeUp atomic.Pointer[func() bool]
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- storeDesc
	ch <- casesDesc
	ch <- attnDesc
	ch <- deferDesc
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if up := c.storeUp.Load(); up != nil {
		v := 0.0
		if (*up)() {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(storeDesc, prometheus.GaugeValue, v)
	}
	counts, err := c.store.CountByState(ctx)
	if err != nil {
		// Left out of the scrape (logged); the rest is served.
		ch <- prometheus.NewInvalidMetric(casesDesc, err)
		return
	}
	for _, s := range refundflow.States() {
		ch <- prometheus.MustNewConstMetric(casesDesc, prometheus.GaugeValue, float64(counts[string(s)]), string(s))
	}
	flags, err := c.store.CountOpenByAttention(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(attnDesc, err)
		return
	}
	for code, n := range flags {
		// Codes are the engine's own constants (bounded), never platform text.
		ch <- prometheus.MustNewConstMetric(attnDesc, prometheus.GaugeValue, float64(n), code)
	}
	for _, code := range refundflow.FlagCodes() {
		// A flag's series exists at 0 too, so that an alert on it needs
		// no absent().
		if _, ok := flags[code]; !ok {
			ch <- prometheus.MustNewConstMetric(attnDesc, prometheus.GaugeValue, 0, code)
		}
	}
	waiting, err := c.store.CountDeferred(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(deferDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(deferDesc, prometheus.GaugeValue, float64(waiting))
}

// lagCollector reads the consumers' pending counts at scrape time. Run adds
// each consumer as it binds it; until then there is nothing to report.
type lagCollector struct {
	mu        sync.Mutex
	consumers map[string]jetstream.Consumer // by source
}

// add reports cons's counts under source from now on.
func (c *lagCollector) add(source string, cons jetstream.Consumer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.consumers[source] = cons
}

// snapshot copies the consumers, so that a scrape does not hold the lock
// over its round trips to the server.
func (c *lagCollector) snapshot() map[string]jetstream.Consumer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.consumers)
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- lagDesc; ch <- ackDesc }

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	for src, cons := range c.snapshot() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		info, err := cons.Info(ctx)
		cancel()
		if err != nil {
			ch <- prometheus.NewInvalidMetric(lagDesc, err)
			continue
		}
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(info.NumPending), src)
		ch <- prometheus.MustNewConstMetric(ackDesc, prometheus.GaugeValue, float64(info.NumAckPending), src)
	}
}
