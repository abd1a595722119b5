package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/refundhub/refundhub/internal/platform"
)

// Seller decisions (SellerPolicy.Decision).
const (
	DecisionAgree         = "agree"          // agree; a return-and-refund request first waits for the return
	DecisionRefuse        = "refuse"         // refuse with RefuseReason
	DecisionRequireReturn = "require_return" // demand the goods back before refunding, even for refund-only requests
	DecisionManual        = "manual"         // do nothing; an operator acts via /_sandbox/refunds/{id}/actions
)

// Defaults applied by New to zero Config fields.
const (
	DefaultPushTimeout       = 1000 * time.Millisecond
	DefaultPushRetries       = 5
	DefaultPushRetryInterval = 30 * time.Minute
	DefaultPushConcurrency   = 4
	DefaultTimeoutAfter      = 30 * time.Second
	DefaultOrderAmount       = 10000 // fen, paid amount of an auto-created order or sub-order
	DefaultRefuseReason      = "买家要求不合理"

	maxJSONBody    = 1 << 20 // API request bodies above 1 MiB are rejected
	maxVoucherSize = 1 << 20 // upstream: imageData < 1 MB
)

// MaxListPageSize is the largest pageSize the list endpoints (T1, T8) accept
// (a GUESS: the limit is not documented), and so the largest useful
// Faults.TaobaoListMaxPageSize. T1 accepts the profile's
// taobao.list.max_page_size too when that is larger: the worker asks for it.
const MaxListPageSize = 100

// Config configures a Sandbox. Zero values get the defaults noted.
type Config struct {
	AccessKey, AccessSecret string // required: the only accepted credentials
	// Profile holds every guessed platform fact the sandbox answers by:
	// paths and methods, codes, status names, signing, times, amount units,
	// list fields, callback names and fields. nil -> platform.Default().
	Profile             *platform.Profile
	AutoCreate          bool          // unknown order/sub-order ids are created on demand with DefaultOrderAmount
	CallbackURL         string        // "" -> callbacks are recorded but not pushed
	PushTimeout         time.Duration // a push succeeds only with HTTP 200 within this; default 1000ms
	PushRetries         int           // retries after the first failed push; 0 -> 5, negative -> none
	PushRetryInterval   time.Duration // pause between retries; default 30m
	PushConcurrency     int           // pushes in flight at once; default 4 (1 keeps push order)
	Seller              SellerPolicy  // global default seller behaviour
	Faults              Faults        // initial faults
	TaobaoNumericStatus bool          // emit refundStatus as the profile's number in TaobaoQuery (documented v2 drift)
	NumericDevelopID    bool          // emit the envelope's developId as a number (documented drift; default string as in the examples)
	// StateFile, when set, keeps the orders, refunds and counters across
	// restarts (persist.go): read by New, written after changes while Run
	// runs. "" -> memory only.
	StateFile string
	Logger    *slog.Logger // nil -> discard
	Now       func() time.Time
	Seed      int64 // 0 -> random
}

// SellerPolicy is how the simulated seller answers refund requests.
type SellerPolicy struct {
	Decision     string        `json:"decision"`      // DecisionAgree (default), DecisionRefuse, DecisionRequireReturn, DecisionManual
	RefuseReason string        `json:"refuse_reason"` // reason shown when refusing
	DecideAfter  time.Duration `json:"decide_after"`  // delay before the seller decides (JSON: Go duration string, e.g. "2s")
	ReceiveAfter time.Duration `json:"receive_after"` // delay between return shipment and the seller confirming receipt
}

// ErrorKind is a kind of injected API failure.
type ErrorKind string

// Injected failure kinds.
const (
	ErrHTTP500   ErrorKind = "http500"   // HTTP 500, non-JSON body
	ErrHTTP503   ErrorKind = "http503"   // HTTP 503
	ErrTimeout   ErrorKind = "timeout"   // hang until the client gives up (or Faults.TimeoutAfter), then 504
	ErrRateLimit ErrorKind = "ratelimit" // envelope with the profile's rate_limited code
	ErrInternal  ErrorKind = "internal"  // envelope with the profile's internal code
	ErrReset     ErrorKind = "reset"     // connection closed without a response
	// ErrRefused: the call is refused whole with a business error (the
	// profile's illegal_state code), as the platform refuses an operation
	// the refund's or the order's state does not allow: nothing applied.
	ErrRefused ErrorKind = "refused"
	// ErrLate: the request reaches the platform late, as if held in a proxy
	// or a queue. It hangs until the client gives up (or Faults.TimeoutAfter)
	// and takes effect Faults.TimeoutAfter after it arrived, whether or not
	// the client still waits; a client that waited gets the normal answer.
	ErrLate ErrorKind = "late"
)

// ErrorKinds lists every ErrorKind.
func ErrorKinds() []ErrorKind {
	return []ErrorKind{ErrHTTP500, ErrHTTP503, ErrTimeout, ErrRateLimit, ErrInternal, ErrReset, ErrLate, ErrRefused}
}

// ForcedError makes the next Count calls of Endpoint fail with Kind.
type ForcedError struct {
	Endpoint string    `json:"endpoint"`
	Kind     ErrorKind `json:"kind"`
	Count    int       `json:"count"`
	// AfterEffect: when true the call takes effect (state changes) and THEN the
	// error is returned, simulating "request processed, response lost".
	AfterEffect bool `json:"after_effect"`
}

// Faults are the failures the sandbox injects. Endpoints are named as in
// EndpointNames.
type Faults struct {
	LatencyMin        time.Duration `json:"latency_min"`   // every API call waits uniform [min,max]
	LatencyMax        time.Duration `json:"latency_max"`   //
	ErrorRate         float64       `json:"error_rate"`    // probability an API call fails with a random kind from ErrorKinds
	ErrorKinds        []ErrorKind   `json:"error_kinds"`   // empty -> http500, timeout, ratelimit
	TimeoutAfter      time.Duration `json:"timeout_after"` // default 30s
	Endpoints         []string      `json:"endpoints"`     // restrict random errors/latency to these endpoints; empty = all
	ForceErrors       []ForcedError `json:"force_errors"`
	DuplicatePushRate float64       `json:"duplicate_push_rate"` // probability a callback is pushed twice
	ReorderPushRate   float64       `json:"reorder_push_rate"`   // probability a callback is held back and sent after the next one
	DropPushRate      float64       `json:"drop_push_rate"`      // probability a callback is never sent

	// Taobao list (T1) paging, for a client that must page through refunds
	// without trusting the documented-as-unknown response (reference §4.3).
	// TaobaoListOmitTotal leaves the "total" key out of T1's data entirely
	// (absent, not 0). TaobaoListMaxPageSize caps the page: T1 returns at most
	// that many items whatever pageSize asked, pages with the capped size
	// (offset = (pageNo-1) * cap) and reports the size it used in pageSize;
	// 0 means no cap, at most MaxListPageSize.
	TaobaoListOmitTotal   bool `json:"taobao_list_omit_total"`
	TaobaoListMaxPageSize int  `json:"taobao_list_max_page_size"`

	// RateQuota is the account's quota of API calls per second, a token
	// bucket of RateQuotaBurst calls (0: one second's worth): a call past
	// it is answered with the profile's rate_limited code, whatever else
	// the faults say, and counted in Stats.QuotaRefused. The platform's
	// real quota is not documented; this is how a client's behaviour
	// against one is measured. 0: no quota.
	RateQuota      float64 `json:"rate_quota"`
	RateQuotaBurst int     `json:"rate_quota_burst"`
}

// Stats are counters an integration test asserts on.
type Stats struct {
	APICalls                   map[string]int64 `json:"api_calls"`                    // by endpoint name, every call incl. failures
	AuthFailures               int64            `json:"auth_failures"`                // requests rejected by authentication
	RefundSubmissions          map[string]int64 `json:"refund_submissions"`           // key "taobao:<subOrderId>" or "1688:<orderId>"
	ReturnLogisticsSubmissions map[string]int64 `json:"return_logistics_submissions"` // by refundId
	Cancels                    map[string]int64 `json:"cancels"`                      // by refundId
	Modifications              map[string]int64 `json:"modifications"`                // accepted T9 modifications, by refundId
	DuplicateSubmissions       int64            `json:"duplicate_submissions"`        // refund or return submissions rejected as duplicates
	QuotaRefused               int64            `json:"quota_refused"`                // API calls answered rate_limited for Faults.RateQuota (not the error_rate's)
	Callbacks                  CallbackStats    `json:"callbacks"`
}

// CallbackStats count callback pushes.
type CallbackStats struct {
	Sent       int64 `json:"sent"`       // HTTP attempts made (incl. duplicates and retries)
	Delivered  int64 `json:"delivered"`  // callbacks acknowledged with HTTP 200 in time
	Failed     int64 `json:"failed"`     // failed attempts
	Retried    int64 `json:"retried"`    // attempts that were retries
	GaveUp     int64 `json:"gave_up"`    // callbacks abandoned after PushRetries retries
	Dropped    int64 `json:"dropped"`    // callbacks never sent (drop fault)
	Duplicated int64 `json:"duplicated"` // extra copies sent (duplicate fault)
	Pending    int64 `json:"pending"`    // callbacks not yet delivered, given up or dropped
}

// Sandbox simulates the platform: the signed API, refund state machines, a
// seller and the callback pusher. Create it with New, serve Handler and run Run.
type Sandbox struct {
	cfg      Config
	prof     *platform.Profile
	log      *slog.Logger
	now      func() time.Time
	routes   []route
	cbTypes  map[cbKey]string // the message type the sandbox pushes per platform and kind
	startRun sync.Once
	wake     chan struct{} // nudges the scheduler
	pushWake chan struct{} // nudges the pusher
	saveWake chan struct{} // nudges the state saver (Config.StateFile)
	changed  atomic.Bool   // the state changed since it was last saved

	rngMu sync.Mutex
	rng   *rand.Rand

	mu          sync.Mutex // guards everything below
	faults      Faults
	quota       *rate.Limiter // Faults.RateQuota's bucket; nil without one
	seller      SellerPolicy
	orders      map[string]*Order   // by platform+":"+orderId
	subOrders   map[string]*Order   // Taobao sub-order id -> order
	refunds     map[string]*Refund  // by refundId
	openRefunds map[string]string   // "taobao:<subOrderId>" / "1688:<orderId>" -> open refund id
	vouchers    map[string]struct{} // uploaded voucher URLs
	stats       Stats
	tasks       taskQueue
	taskSeq     uint64

	cb callbacks
}

// ErrConfig is wrapped by every configuration error New returns.
var ErrConfig = errors.New("invalid sandbox config")

// New validates cfg, applies defaults and returns a Sandbox. Nothing runs
// until Run is called; the Handler works without Run but then sellers never
// decide and callbacks are only queued.
func New(cfg Config) (*Sandbox, error) {
	if cfg.AccessKey == "" || cfg.AccessSecret == "" {
		return nil, fmt.Errorf("%w: access key and access secret are required", ErrConfig)
	}
	if cfg.Profile == nil {
		cfg.Profile = platform.Default()
	}
	for _, e := range platform.AllEndpoints() {
		if p := cfg.Profile.Endpoint(e).Path; strings.HasPrefix(p, "/_sandbox/") {
			return nil, fmt.Errorf("%w: endpoints.%s.path = %q: /_sandbox/ is reserved for the admin API", ErrConfig, e, p)
		}
	}
	if cfg.PushTimeout == 0 {
		cfg.PushTimeout = DefaultPushTimeout
	}
	switch {
	case cfg.PushRetries == 0:
		cfg.PushRetries = DefaultPushRetries
	case cfg.PushRetries < 0:
		cfg.PushRetries = 0 // no retries
	}
	if cfg.PushRetryInterval == 0 {
		cfg.PushRetryInterval = DefaultPushRetryInterval
	}
	if cfg.PushConcurrency == 0 {
		cfg.PushConcurrency = DefaultPushConcurrency
	}
	switch {
	case cfg.PushTimeout < 0 || cfg.PushRetryInterval < 0:
		return nil, fmt.Errorf("%w: push timeout and retry interval must be positive", ErrConfig)
	case cfg.PushConcurrency < 0:
		return nil, fmt.Errorf("%w: push concurrency %d is negative", ErrConfig, cfg.PushConcurrency)
	}
	seller, err := normalizeSeller(cfg.Seller)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	cfg.Seller = seller
	if err := validateFaults(cfg.Faults); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	seed := uint64(cfg.Seed)
	if cfg.Seed == 0 {
		seed = rand.Uint64()
	}
	s := &Sandbox{
		cfg:      cfg,
		prof:     cfg.Profile,
		log:      cfg.Logger,
		now:      cfg.Now,
		cbTypes:  pushTypes(cfg.Profile),
		wake:     make(chan struct{}, 1),
		pushWake: make(chan struct{}, 1),
		saveWake: make(chan struct{}, 1),
		rng:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		faults:   cloneFaults(cfg.Faults),
		quota:    quotaBucket(cfg.Faults),
		seller:   seller,
	}
	s.resetLocked()
	s.cb.init()
	s.routes = s.buildRoutes()
	if cfg.StateFile != "" {
		loaded, err := s.loadState()
		if err != nil {
			return nil, err
		}
		if loaded {
			s.log.Info("sandbox: state restored", "file", cfg.StateFile, "orders", len(s.orders), "refunds", len(s.refunds))
		}
	}
	return s, nil
}

// resetLocked clears orders, refunds and stats. Callers hold s.mu (or own s exclusively).
func (s *Sandbox) resetLocked() {
	s.orders = map[string]*Order{}
	s.subOrders = map[string]*Order{}
	s.refunds = map[string]*Refund{}
	s.openRefunds = map[string]string{}
	s.vouchers = map[string]struct{}{}
	s.stats = Stats{
		APICalls:                   map[string]int64{},
		RefundSubmissions:          map[string]int64{},
		ReturnLogisticsSubmissions: map[string]int64{},
		Cancels:                    map[string]int64{},
		Modifications:              map[string]int64{},
	}
	s.tasks = nil
}

func normalizeSeller(p SellerPolicy) (SellerPolicy, error) {
	if p.Decision == "" {
		p.Decision = DecisionAgree
	}
	switch p.Decision {
	case DecisionAgree, DecisionRefuse, DecisionRequireReturn, DecisionManual:
	default:
		return p, fmt.Errorf("seller decision %q: want agree, refuse, require_return or manual", p.Decision)
	}
	if p.DecideAfter < 0 || p.ReceiveAfter < 0 {
		return p, errors.New("seller delays must not be negative")
	}
	if len([]rune(p.RefuseReason)) > 200 {
		return p, errors.New("seller refuse reason longer than 200 characters")
	}
	if p.RefuseReason == "" {
		p.RefuseReason = DefaultRefuseReason
	}
	return p, nil
}

func validateFaults(f Faults) error {
	names := map[string]bool{}
	for _, n := range EndpointNames() {
		names[n] = true
	}
	rates := map[string]float64{"error_rate": f.ErrorRate, "duplicate_push_rate": f.DuplicatePushRate,
		"reorder_push_rate": f.ReorderPushRate, "drop_push_rate": f.DropPushRate}
	for k, v := range rates {
		if !(v >= 0 && v <= 1) { // also rejects NaN
			return fmt.Errorf("%s = %v: want a probability in [0,1]", k, v)
		}
	}
	if f.LatencyMin < 0 || f.LatencyMax < 0 || f.TimeoutAfter < 0 {
		return errors.New("latency and timeout must not be negative")
	}
	if f.LatencyMax != 0 && f.LatencyMax < f.LatencyMin {
		return fmt.Errorf("latency_max %s is below latency_min %s", f.LatencyMax, f.LatencyMin)
	}
	if !(f.RateQuota >= 0 && f.RateQuota <= 100000) || f.RateQuotaBurst < 0 || f.RateQuotaBurst > 100000 {
		return fmt.Errorf("rate_quota %v and rate_quota_burst %d: want calls per second from 0 (no quota) to 100000, and a burst from 0 (one second's worth) to 100000",
			f.RateQuota, f.RateQuotaBurst)
	}
	if f.TaobaoListMaxPageSize < 0 || f.TaobaoListMaxPageSize > MaxListPageSize {
		return fmt.Errorf("taobao_list_max_page_size %d: want 0 (no cap) to %d", f.TaobaoListMaxPageSize, MaxListPageSize)
	}
	if f.LatencyMin > time.Minute || f.LatencyMax > time.Minute || f.TimeoutAfter > 10*time.Minute {
		return errors.New("latency above 1m or timeout_after above 10m")
	}
	for _, k := range f.ErrorKinds {
		if !slices.Contains(ErrorKinds(), k) {
			return fmt.Errorf("error kind %q: want one of %v", k, ErrorKinds())
		}
	}
	for _, e := range f.Endpoints {
		if !names[e] {
			return fmt.Errorf("endpoint %q: want one of %v", e, EndpointNames())
		}
	}
	for i, fe := range f.ForceErrors {
		if !names[fe.Endpoint] {
			return fmt.Errorf("force_errors[%d].endpoint %q: want one of %v", i, fe.Endpoint, EndpointNames())
		}
		if !slices.Contains(ErrorKinds(), fe.Kind) {
			return fmt.Errorf("force_errors[%d].kind %q: want one of %v", i, fe.Kind, ErrorKinds())
		}
		if fe.Count < 1 {
			return fmt.Errorf("force_errors[%d].count %d: want >= 1", i, fe.Count)
		}
	}
	return nil
}

func cloneFaults(f Faults) Faults {
	f.ErrorKinds = slices.Clone(f.ErrorKinds)
	f.Endpoints = slices.Clone(f.Endpoints)
	f.ForceErrors = slices.Clone(f.ForceErrors)
	return f
}

// SetFaults replaces the injected faults. Invalid faults are ignored and logged;
// use the admin endpoint to get the validation error.
func (s *Sandbox) SetFaults(f Faults) {
	if err := validateFaults(f); err != nil {
		s.log.Warn("sandbox: faults rejected", "err", err)
		return
	}
	s.mu.Lock()
	if f.RateQuota != s.faults.RateQuota || f.RateQuotaBurst != s.faults.RateQuotaBurst {
		s.quota = quotaBucket(f) // a new quota starts with a full bucket
	}
	s.faults = cloneFaults(f)
	s.mu.Unlock()
}

// quotaBucket is the token bucket of f's RateQuota, nil without one.
func quotaBucket(f Faults) *rate.Limiter {
	if f.RateQuota <= 0 {
		return nil
	}
	burst := f.RateQuotaBurst
	if burst == 0 {
		burst = max(1, int(math.Ceil(f.RateQuota)))
	}
	return rate.NewLimiter(rate.Limit(f.RateQuota), burst)
}

// Faults returns the faults in force (ForceErrors counts decrease as they fire).
func (s *Sandbox) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneFaults(s.faults)
}

// SetSeller replaces the global seller policy. Invalid policies are ignored and logged.
func (s *Sandbox) SetSeller(p SellerPolicy) {
	p, err := normalizeSeller(p)
	if err != nil {
		s.log.Warn("sandbox: seller policy rejected", "err", err)
		return
	}
	s.mu.Lock()
	s.seller = p
	s.mu.Unlock()
}

// Seller returns the global seller policy.
func (s *Sandbox) Seller() SellerPolicy {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seller
}

// Stats returns a snapshot of the counters.
func (s *Sandbox) Stats() Stats {
	s.mu.Lock()
	st := Stats{
		APICalls:                   cloneMap(s.stats.APICalls),
		AuthFailures:               s.stats.AuthFailures,
		RefundSubmissions:          cloneMap(s.stats.RefundSubmissions),
		ReturnLogisticsSubmissions: cloneMap(s.stats.ReturnLogisticsSubmissions),
		Cancels:                    cloneMap(s.stats.Cancels),
		Modifications:              cloneMap(s.stats.Modifications),
		DuplicateSubmissions:       s.stats.DuplicateSubmissions,
		QuotaRefused:               s.stats.QuotaRefused,
	}
	s.mu.Unlock()
	st.Callbacks = s.cb.statsSnapshot()
	return st
}

func cloneMap(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Reset clears all orders, refunds, stats, scheduled decisions and callbacks.
// Faults and the seller policy stay.
func (s *Sandbox) Reset() {
	s.mu.Lock()
	s.resetLocked()
	s.mu.Unlock()
	s.cb.reset()
	s.markChanged()
}

// Run drives the seller's scheduled decisions and the callback pusher until ctx
// is done, then returns nil. It may be called once.
func (s *Sandbox) Run(ctx context.Context) error {
	started := false
	s.startRun.Do(func() { started = true })
	if !started {
		return errors.New("sandbox: Run called twice")
	}
	// The state file's last save comes after the seller's last move.
	saving, stopSaving := context.WithCancel(context.WithoutCancel(ctx))
	saved := make(chan struct{})
	go func() {
		defer close(saved)
		s.runSaver(saving)
	}()
	var wg sync.WaitGroup
	wg.Go(func() { s.runScheduler(ctx) })
	wg.Go(func() { s.runPusher(ctx) })
	wg.Wait()
	stopSaving()
	<-saved
	return nil
}

// randFloat returns a uniform number in [0,1) from the seeded generator.
func (s *Sandbox) randFloat() float64 {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.Float64()
}

// randInt returns a uniform number in [0,n).
func (s *Sandbox) randInt(n int64) int64 {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.Int64N(n)
}

// randDigits returns n random decimal digits, the first one in [1,8] so the
// value fits an int64 even at 19 digits.
func (s *Sandbox) randDigits(n int) string {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	b := make([]byte, n)
	for i := range b {
		if i == 0 {
			b[i] = byte('1' + s.rng.IntN(8))
			continue
		}
		b[i] = byte('0' + s.rng.IntN(10))
	}
	return string(b)
}

// randHex returns n lowercase hex digits.
func (s *Sandbox) randHex(n int) string {
	const hexdigits = "0123456789abcdef"
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	b := make([]byte, n)
	for i := range b {
		b[i] = hexdigits[s.rng.IntN(16)]
	}
	return string(b)
}
