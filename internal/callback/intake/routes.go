package intake

import (
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// routeCallback is the callback route; the token is the last segment. Only
// the pattern is ever logged or used as a label, never the matched path.
const routeCallback = "/callbacks/:token"

// routes lists every route of the receiver in one place.
func (s *Server) routes(e *echo.Echo) {
	e.POST(routeCallback, s.handleCallback)
	// Without a token segment: same handler, so the answer is 401, not 404.
	e.POST("/callbacks", s.handleCallback)
	e.POST("/callbacks/", s.handleCallback)
	// The platform's console "Verify" button needs a 200 from the callback
	// address; how it probes is UNKNOWN (reference §3.1). A GET with the
	// right token answers 200 and stores nothing.
	e.GET(routeCallback, s.handleProbe)
	e.GET("/healthz", s.handleHealthz)
	e.GET("/readyz", s.handleReadyz)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{Registry: s.metrics.reg})))
}
