package console

import (
	"strconv"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the console's Prometheus series, on its own registry.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	logins   *prometheus.CounterVec
	commands *prometheus.CounterVec
}

func newMetrics() *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "console_requests_total", Help: "HTTP requests by route pattern and status.",
		}, []string{"route", "status"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "console_logins_total", Help: "Login attempts by outcome (ok, wrong_password, rate_limited).",
		}, []string{"outcome"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "console_commands_total", Help: "Commands published from the console, by kind and verdict (applied, rejected, pending).",
		}, []string{"kind", "verdict"}),
	}
	reg.MustRegister(m.requests, m.logins, m.commands,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// countRequests counts every request by its route pattern (never the
// path, which would make one series per case) and the status answered.
func (s *Server) countRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := next(c)
		if err != nil {
			c.Error(err) // write the answer now, so its status is counted
		}
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		s.metrics.requests.WithLabelValues(route, strconv.Itoa(c.Response().Status)).Inc()
		return nil
	}
}
