package console

import (
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// routes lists every route of the console in one place. authenticate
// guards all of them but those in public.
func (s *Server) routes(e *echo.Echo) {
	e.GET("/healthz", s.handleHealthz)
	e.GET("/readyz", s.handleReadyz)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{Registry: s.metrics.reg})))

	e.GET("/login", s.handleLoginPage)
	e.POST("/login", s.handleLogin)
	e.POST("/logout", s.handleLogout)

	e.StaticFS("/static", echo.MustSubFS(staticFS, "static"))
	e.GET("/", s.handleOverview)
	e.GET("/cases", s.handleCasesPage)
	e.GET("/cases.csv", s.handleCasesCSV)
	e.GET("/cases/:id", s.handleCasePage)
	e.POST("/cases/:id/resolve", s.handleAction(actions["resolve"]))
	e.POST("/cases/:id/ship", s.handleAction(actions["ship"]))
	e.POST("/cases/:id/cancel", s.handleAction(actions["cancel"]))
	e.POST("/cases/:id/message", s.handleAction(actions["message"]))
	e.POST("/cases/:id/modify", s.handleAction(actions["modify"]))
	e.POST("/cases/:id/replay", s.handleReplayForm)
	s.requestRoutes(e) // GET /requests/new, POST /requests
	e.GET("/dead-letters", s.handleDeadLettersPage)
	e.GET("/dead-letters/:id", s.handleDeadLetterPage)
	e.POST("/dead-letters/:id/retry", s.handleDeadLetterForm("retry"))
	e.POST("/dead-letters/:id/discard", s.handleDeadLetterForm("discard"))
	e.POST("/dead-letters/bulk", s.handleDeadLettersBulk)

	api := e.Group("/api/v1", s.continueTrace)
	api.GET("/cases", s.handleAPICases)
	api.GET("/cases.csv", s.handleCasesCSV)
	api.GET("/cases/:id", s.handleAPICase)
	api.GET("/dead-letters", s.handleAPIDeadLetters)
	api.POST("/commands", s.handleAPICommand)
	api.GET("/commands/:id", s.handleAPICommandVerdict)
	api.GET("/dead-letters/groups", s.handleAPIDeadLetterGroups)
	api.GET("/dead-letters/:id", s.handleAPIDeadLetter)
	api.POST("/dead-letters/:id/retry", s.handleAPIDeadLetterAction("retry"))
	api.POST("/dead-letters/:id/discard", s.handleAPIDeadLetterAction("discard"))
	api.POST("/dead-letters/bulk", s.handleAPIDeadLettersBulk)
	api.POST("/replay", s.handleAPIReplay)
	api.GET("/reasons", s.handleAPIReasons)
	api.GET("/events", s.handleEvents) // eventsPath
}
