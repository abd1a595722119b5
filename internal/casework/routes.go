package casework

import (
	"io"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves the process's operational endpoints, for its supervisor
// and for Prometheus:
//
//	GET /healthz   200 while the process runs
//	GET /readyz    200 while it takes work (see readiness), 503 otherwise
//	GET /metrics   the registry given to NewMetrics
//
// It may be served before Run, so that a supervisor sees the process alive
// while it waits for NATS.
func (w *Worker) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", handleHealth)
	mux.Handle("GET /readyz", handleReady(&w.ready, w.log))
	// A collector that cannot read (NATS down for the consumers' lag) leaves
	// its series out, logged; the rest is served: an outage is when the
	// other figures matter most.
	mux.Handle("GET /metrics", promhttp.HandlerFor(w.metrics.reg, promhttp.HandlerOpts{Registry: w.metrics.reg,
		ErrorHandling: promhttp.ContinueOnError, ErrorLog: slog.NewLogLogger(w.log.Handler(), slog.LevelDebug)}))
	return mux
}

func handleHealth(rw http.ResponseWriter, _ *http.Request) {
	rw.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(rw, `{"status":"ok"}`)
}

// handleReady answers 503 with the same body whatever is missing, the body
// probers already read; the reason goes to the debug log.
func handleReady(r *readiness, log *slog.Logger) http.HandlerFunc {
	return func(rw http.ResponseWriter, req *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		if err := r.check(req.Context()); err != nil {
			log.Debug("not ready", "reason", err)
			rw.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(rw, `{"status":"not ready"}`)
			return
		}
		_, _ = io.WriteString(rw, `{"status":"ready"}`)
	}
}
