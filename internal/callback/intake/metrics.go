package intake

import (
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/refundhub/refundhub/internal/callback"
)

// Outcomes of a request, the label of receiver_requests_total.
const (
	OutcomeAccepted    = "accepted"    // stored under callbacks.<platform>.<type>
	OutcomeParked      = "parked"      // stored under parked.callbacks.<platform>
	OutcomeDuplicate   = "duplicate"   // same Nats-Msg-Id already stored within the window; answered 200
	OutcomeRejected    = "rejected"    // 4xx, nothing stored
	OutcomeUnavailable = "unavailable" // 503, nothing stored (as far as the receiver knows)
	OutcomeError       = "error"       // 500, a bug
)

// metrics lives on its own registry (no global state). Every label child the
// hot path touches is resolved once here, so a request costs a few atomic adds.
type metrics struct {
	reg *prometheus.Registry

	accepted, parked, duplicate, rejected, unavailable, failed prometheus.Counter

	publishSeconds prometheus.Histogram
	duplicates     prometheus.Counter
	parkedBy       *prometheus.CounterVec
	rejections     *prometheus.CounterVec
	parkedChildren map[callback.ParkReason]prometheus.Counter
	rejectChildren map[string]prometheus.Counter

	unknownFields *prometheus.CounterVec
	fieldsMu      sync.Mutex
	fieldSeries   map[[3]string]prometheus.Counter // at most maxFieldSeries
}

// maxFieldSeries bounds the label sets of receiver_body_unknown_fields_total:
// field names come from the platform (or from whoever can post), so past
// this many distinct (platform, type, field) the field is counted as
// "_other". The type is always a known one (unknown types are parked).
const maxFieldSeries = 64

// otherField is the field label once maxFieldSeries is reached.
const otherField = "_other"

// unknownField counts one unknown body field.
func (m *metrics) unknownField(plat, typ, field string) {
	key := [3]string{plat, typ, field}
	m.fieldsMu.Lock()
	c, ok := m.fieldSeries[key]
	if !ok {
		if len(m.fieldSeries) >= maxFieldSeries {
			key[2] = otherField
		}
		if c, ok = m.fieldSeries[key]; !ok {
			c = m.unknownFields.WithLabelValues(key[0], key[1], key[2])
			m.fieldSeries[key] = c
		}
	}
	m.fieldsMu.Unlock()
	c.Inc()
}

func newMetrics() *metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "receiver_requests_total",
		Help: "Callback requests by outcome: accepted, parked, duplicate (all answered 200), rejected (4xx), unavailable (503), error (500).",
	}, []string{"outcome"})
	m := &metrics{
		reg: reg,
		publishSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "receiver_publish_duration_seconds",
			Help:    "Time from publish to JetStream PubAck (or failure), in seconds.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "receiver_duplicates_total",
			Help: "Callbacks whose Nats-Msg-Id JetStream reported as a duplicate inside its window (stored once, answered 200).",
		}),
		parkedBy: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "receiver_parked_total",
			Help: "Well-formed callbacks stored under parked.callbacks.<platform>, by reason.",
		}, []string{"reason"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "receiver_rejections_total",
			Help: "Error responses by machine code.",
		}, []string{"code"}),
		parkedChildren: map[callback.ParkReason]prometheus.Counter{},
		rejectChildren: map[string]prometheus.Counter{},
		unknownFields: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "receiver_body_unknown_fields_total",
			Help: "Fields of accepted callback bodies that the platform profile does not list for their kind, by platform, message type and field (at most 64 series; then field=\"_other\").",
		}, []string{"platform", "type", "field"}),
		fieldSeries: map[[3]string]prometheus.Counter{},
	}
	reg.MustRegister(requests, m.publishSeconds, m.duplicates, m.parkedBy, m.rejections, m.unknownFields)
	m.accepted = requests.WithLabelValues(OutcomeAccepted)
	m.parked = requests.WithLabelValues(OutcomeParked)
	m.duplicate = requests.WithLabelValues(OutcomeDuplicate)
	m.rejected = requests.WithLabelValues(OutcomeRejected)
	m.unavailable = requests.WithLabelValues(OutcomeUnavailable)
	m.failed = requests.WithLabelValues(OutcomeError)
	for _, r := range []callback.ParkReason{callback.ParkUnknownType, callback.ParkInvalidBody, callback.ParkMissingOrderID, callback.ParkMissingRefundID} {
		m.parkedChildren[r] = m.parkedBy.WithLabelValues(string(r))
	}
	codes := []string{
		string(callback.CodeEmptyBody), string(callback.CodeInvalidJSON), string(callback.CodeInvalidEnvelope),
		string(callback.CodeInvalidMessageType), string(callback.CodeInvalidMessageBody), string(callback.CodeInvalidPlatform),
		string(callback.CodeInvalidTimestamp),
	}
	for code := range statusOf {
		codes = append(codes, code)
	}
	for _, c := range codes {
		m.rejectChildren[c] = m.rejections.WithLabelValues(c)
	}
	return m
}

// park counts a parked callback. The maps are only read after newMetrics, so
// concurrent lookups are safe.
func (m *metrics) park(r callback.ParkReason) {
	m.parked.Inc()
	if c, ok := m.parkedChildren[r]; ok {
		c.Inc()
	} else {
		m.parkedBy.WithLabelValues(string(r)).Inc()
	}
}

// reject counts an error response; only callback requests count towards
// receiver_requests_total.
func (m *metrics) reject(code string, status int, callbackRoute bool) {
	switch {
	case !callbackRoute:
	case status == http.StatusServiceUnavailable:
		m.unavailable.Inc()
	case status >= 500:
		m.failed.Inc()
	default:
		m.rejected.Inc()
	}
	if c, ok := m.rejectChildren[code]; ok {
		c.Inc()
	} else {
		m.rejections.WithLabelValues(code).Inc()
	}
}
