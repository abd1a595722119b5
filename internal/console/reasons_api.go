package console

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/refundhub/refundhub/internal/excerpt"
	"github.com/refundhub/refundhub/internal/reasons"
)

// reasonParams are GET /api/v1/reasons' query parameters, the request
// form's field names, by the field a reasons.FieldError names.
var reasonParams = map[string]string{"platform": "platform", "orderId": "order", "subOrderId": "sub_order",
	"goodsStatus": "goods_status", "type": "type"}

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
		return errNotOperator
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
	ctx, cancel := context.WithTimeout(c.Request().Context(), lookupTimeout)
	defer cancel()
	return c.JSON(http.StatusOK, s.reasons(ctx, q))
}
