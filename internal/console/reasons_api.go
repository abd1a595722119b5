package console

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"github.com/refundhub/refundhub/internal/excerpt"
	"github.com/refundhub/refundhub/internal/reasons"
)

// reasonParams are GET /api/v1/reasons' query parameters, the request
// form's field names, by the field a reasons.FieldError names.
var reasonParams = map[string]string{"platform": "platform", "orderId": "order", "subOrderId": "sub_order",
	"goodsStatus": "goods_status", "type": "type"}

// errLookupNotOperator refuses a viewer's look-up.
var errLookupNotOperator = &Error{Code: CodeForbidden, Message: "looking up the platform's reasons needs the operator role (it is for filing a request)"}

// Each account may look the platform's reasons up lookupBurst times at
// once, then once every lookupEvery: a look-up makes up to five platform
// calls, against the account's quota the worker shares, and a script
// looping over refundctl reasons must not starve the worker or the other
// operators' look-ups.
const (
	lookupEvery = time.Second
	lookupBurst = 3
)

// lookupLimiter paces look-ups per console account (the zero value is
// ready). Accounts are few, so their limiters are kept.
type lookupLimiter struct {
	mu sync.Mutex
	by map[string]*rate.Limiter
}

// allow takes a look-up for account now, or says how long to wait.
func (l *lookupLimiter) allow(account string) (ok bool, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.by == nil {
		l.by = map[string]*rate.Limiter{}
	}
	lim := l.by[account]
	if lim == nil {
		lim = rate.NewLimiter(rate.Every(lookupEvery), lookupBurst)
		l.by[account] = lim
	}
	r := lim.Reserve()
	if d := r.Delay(); d > 0 {
		r.Cancel()
		return false, d
	}
	return true, 0
}

// lookupRefused is the rate_limited error of a look-up refused for wait,
// its Retry-After set on c's answer.
func lookupRefused(c echo.Context, wait time.Duration) error {
	secs := int(math.Ceil(wait.Seconds()))
	c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
	return &Error{Code: CodeRateLimited, Message: fmt.Sprintf("too many reasons look-ups by this account: wait %ds "+
		"(each asks the platform, against the account's quota the worker shares)", secs)}
}

// errNoPlatform answers a look-up on a console without platform
// credentials.
var errNoPlatform = &Error{Code: CodeNotConfigured,
	Message: "this console has no platform credentials (UPSTREAM_* in its environment): refundctl reasons on a host that has them lists the reasons"}

// handleAPIReasons is GET /api/v1/reasons: the reasons the platform offers
// for an order (1688) or sub-order (Taobao), by type and goods status, as
// refundctl reasons lists them (package reasons; refundctl asks here when
// REFUNDHUB_URL is set). Operators only, as the request form's look-up:
// each look-up spends the account's platform quota. A call the platform
// refused or did not answer is in the answer's forms, with its error; the
// answer is 200 whenever the platform was asked.
func (s *Server) handleAPIReasons(c echo.Context) error {
	if !who(c).CanAct() {
		return errLookupNotOperator
	}
	if s.reasons == nil {
		return errNoPlatform
	}
	v := c.QueryParams()
	known := map[string]bool{}
	for _, p := range reasonParams {
		known[p] = true
	}
	for p := range v {
		if !known[p] {
			return invalidParam(excerpt.Of(p, 40), "not a parameter (platform, order, sub_order, goods_status, type)")
		}
	}
	q := reasons.Query{Platform: v.Get("platform"), OrderID: v.Get("order"), SubOrderID: v.Get("sub_order"),
		GoodsStatus: v.Get("goods_status"), Type: v.Get("type")}
	if err := q.Check(); err != nil {
		var fe *reasons.FieldError
		if errors.As(err, &fe) {
			e := invalidParam(reasonParams[fe.Field], fe.Rule)
			if fe.Given != "" {
				e.Message = e.Param + " " + strconv.Quote(fe.Given) + ": " + fe.Rule
			}
			return e
		}
		return invalidArg(err.Error())
	}
	if ok, wait := s.lookups.allow(who(c).Name); !ok {
		return lookupRefused(c, wait)
	}
	s.logger.Info("reasons look-up", "account", who(c).Name, "platform", q.Platform, "order", q.OrderID, "sub_order", q.SubOrderID)
	ctx, cancel := context.WithTimeout(c.Request().Context(), lookupTimeout)
	defer cancel()
	return c.JSON(http.StatusOK, s.reasons(ctx, q))
}
