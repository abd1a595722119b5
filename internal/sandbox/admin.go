package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/refundhub/refundhub/internal/excerpt"
	"github.com/refundhub/refundhub/internal/platform"
)

// Admin error codes (the "code" of {"error":{"code","message"}}).
const (
	AdminMalformedJSON    = "malformed_json"
	AdminInvalidArgument  = "invalid_argument"
	AdminNotFound         = "not_found"
	AdminIllegalState     = "illegal_state"
	AdminConflict         = "conflict"
	AdminMethodNotAllowed = "method_not_allowed"
	AdminUnsupported      = "unsupported" // the platform has no such thing (a message on a 1688 refund)
)

type adminError struct {
	status  int
	code    string
	message string
}

func adminErr(status int, code, format string, args ...any) *adminError {
	return &adminError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

// adminHandler returns a JSON value or an error.
type adminHandler func(r *http.Request) (any, *adminError)

// created is a value an admin handler answers with HTTP 201 Created.
type created struct{ v any }

func (s *Sandbox) adminRoutes() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, methods map[string]adminHandler) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			h, ok := methods[r.Method]
			if !ok {
				allowed := make([]string, 0, len(methods))
				for m := range methods {
					allowed = append(allowed, m)
				}
				w.Header().Set("Allow", strings.Join(allowed, ", "))
				writeAdmin(w, nil, adminErr(http.StatusMethodNotAllowed, AdminMethodNotAllowed, "method %s not allowed", r.Method))
				return
			}
			v, e := h(r)
			writeAdmin(w, v, e)
		})
	}
	handle("/_sandbox/healthz", map[string]adminHandler{http.MethodGet: func(*http.Request) (any, *adminError) {
		return map[string]string{"status": "ok"}, nil
	}})
	handle("/_sandbox/stats", map[string]adminHandler{http.MethodGet: func(*http.Request) (any, *adminError) {
		return s.Stats(), nil
	}})
	handle("/_sandbox/faults", map[string]adminHandler{
		http.MethodGet: func(*http.Request) (any, *adminError) { return s.Faults(), nil },
		http.MethodPut: s.adminPutFaults,
	})
	handle("/_sandbox/seller", map[string]adminHandler{
		http.MethodGet: func(*http.Request) (any, *adminError) { return s.Seller(), nil },
		http.MethodPut: s.adminPutSeller,
	})
	handle("/_sandbox/orders", map[string]adminHandler{http.MethodPost: s.adminCreateOrder})
	handle("/_sandbox/orders/{orderId}", map[string]adminHandler{http.MethodGet: s.adminGetOrder})
	handle("/_sandbox/orders/{orderId}/events", map[string]adminHandler{http.MethodPost: s.adminOrderEvent})
	handle("/_sandbox/refunds", map[string]adminHandler{http.MethodPost: s.adminSeedRefund})
	handle("/_sandbox/refunds/{refundId}", map[string]adminHandler{http.MethodGet: s.adminGetRefund})
	handle("/_sandbox/refunds/{refundId}/actions", map[string]adminHandler{http.MethodPost: s.adminRefundAction})
	handle("/_sandbox/refunds/{refundId}/messages", map[string]adminHandler{http.MethodPost: s.adminWriteMessage})
	handle("/_sandbox/callbacks", map[string]adminHandler{http.MethodGet: func(*http.Request) (any, *adminError) {
		return map[string]any{"callbacks": s.cb.log()}, nil
	}})
	handle("/_sandbox/callbacks/retry-now", map[string]adminHandler{http.MethodPost: func(*http.Request) (any, *adminError) {
		return map[string]int{"queued": s.cb.retryNow()}, nil
	}})
	handle("/_sandbox/reset", map[string]adminHandler{http.MethodPost: func(*http.Request) (any, *adminError) {
		s.Reset()
		return map[string]string{"status": "reset"}, nil
	}})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeAdmin(w, nil, adminErr(http.StatusNotFound, AdminNotFound, "no admin endpoint %s", excerpt.Of(r.URL.Path, 100)))
	})
	return mux
}

func writeAdmin(w http.ResponseWriter, v any, e *adminError) {
	w.Header().Set("Content-Type", "application/json")
	if e != nil {
		b, _ := json.Marshal(map[string]any{"error": map[string]string{"code": e.code, "message": e.message}})
		w.WriteHeader(e.status)
		_, _ = w.Write(b)
		return
	}
	status := http.StatusOK
	if c, ok := v.(created); ok {
		status, v = http.StatusCreated, c.v
	}
	b, err := json.Marshal(v)
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"error":{"code":"internal","message":"encode response"}}`))
		return
	}
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// decodeAdmin decodes a JSON object body strictly (unknown fields are errors,
// so a typo does not silently do nothing).
func decodeAdmin(r *http.Request, v any) *adminError {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxJSONBody+1))
	if err != nil {
		return adminErr(http.StatusBadRequest, AdminMalformedJSON, "read body: %v", err)
	}
	if len(b) > maxJSONBody {
		return adminErr(http.StatusRequestEntityTooLarge, AdminInvalidArgument, "body exceeds %d bytes", maxJSONBody)
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return adminErr(http.StatusBadRequest, AdminMalformedJSON, "want a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return adminErr(http.StatusBadRequest, AdminMalformedJSON, "decode: %s", excerpt.Of(err.Error(), 200))
	}
	if dec.More() {
		return adminErr(http.StatusBadRequest, AdminMalformedJSON, "trailing data after the JSON object")
	}
	return nil
}

func (s *Sandbox) adminPutFaults(r *http.Request) (any, *adminError) {
	var f Faults
	if e := decodeAdmin(r, &f); e != nil {
		return nil, e
	}
	if err := validateFaults(f); err != nil {
		return nil, adminErr(http.StatusBadRequest, AdminInvalidArgument, "%v", err)
	}
	s.SetFaults(f)
	return s.Faults(), nil
}

// sellerPatch is the body of PUT /_sandbox/seller. Each field is a pointer so
// that an absent (or null) field keeps the current value: setting only the
// decision must not reset the delays to zero.
type sellerPatch struct {
	Decision     *string   `json:"decision"`
	RefuseReason *string   `json:"refuse_reason"`
	DecideAfter  *duration `json:"decide_after"`
	ReceiveAfter *duration `json:"receive_after"`
}

// apply returns p with the fields the patch names replaced.
func (sp sellerPatch) apply(p SellerPolicy) SellerPolicy {
	if sp.Decision != nil {
		p.Decision = *sp.Decision
	}
	if sp.RefuseReason != nil {
		p.RefuseReason = *sp.RefuseReason
	}
	if sp.DecideAfter != nil {
		p.DecideAfter = time.Duration(*sp.DecideAfter)
	}
	if sp.ReceiveAfter != nil {
		p.ReceiveAfter = time.Duration(*sp.ReceiveAfter)
	}
	return p
}

// adminPutSeller: PUT /_sandbox/seller, a partial SellerPolicy -> the whole
// policy. The read, patch and write happen under one lock so two concurrent
// partial updates cannot undo each other.
func (s *Sandbox) adminPutSeller(r *http.Request) (any, *adminError) {
	var patch sellerPatch
	if e := decodeAdmin(r, &patch); e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := normalizeSeller(patch.apply(s.seller))
	if err != nil {
		return nil, adminErr(http.StatusBadRequest, AdminInvalidArgument, "%v", err)
	}
	s.seller = p
	return p, nil
}

// adminFromErr answers an error of the Go admin API (ErrNotFound,
// ErrConflict, ErrIllegalState; anything else is an invalid argument).
func adminFromErr(err error) *adminError {
	switch {
	case errors.Is(err, ErrNotFound):
		return adminErr(http.StatusNotFound, AdminNotFound, "%v", err)
	case errors.Is(err, ErrConflict):
		return adminErr(http.StatusConflict, AdminConflict, "%v", err)
	case errors.Is(err, ErrIllegalState):
		return adminErr(http.StatusConflict, AdminIllegalState, "%v", err)
	}
	return adminErr(http.StatusBadRequest, AdminInvalidArgument, "%v", err)
}

// adminSeedRefund: POST /_sandbox/refunds, a RefundSeed -> the Refund.
func (s *Sandbox) adminSeedRefund(r *http.Request) (any, *adminError) {
	var seed RefundSeed
	if e := decodeAdmin(r, &seed); e != nil {
		return nil, e
	}
	ref, err := s.SeedRefund(seed)
	if err != nil {
		return nil, adminFromErr(err)
	}
	return ref, nil
}

// CreateOrderRequest is the body of POST /_sandbox/orders. Amounts are fen.
type CreateOrderRequest struct {
	Platform  string        `json:"platform"` // "taobao" or "1688"
	OrderID   string        `json:"order_id"` // optional: 19 random digits
	OrderNo   string        `json:"order_no"` // optional: PO + date + digits
	SubOrders []SubOrder    `json:"sub_orders"`
	Amount    int64         `json:"amount"`   // product amount; default: sum of sub-orders
	Carriage  int64         `json:"carriage"` // shipping fee
	Status    string        `json:"status"`   // default WAITING_FOR_SENT (paid)
	Seller    *SellerPolicy `json:"seller"`   // optional per-order policy
}

func (s *Sandbox) adminCreateOrder(r *http.Request) (any, *adminError) {
	var req CreateOrderRequest
	if e := decodeAdmin(r, &req); e != nil {
		return nil, e
	}
	o := &Order{Platform: req.Platform, OrderID: req.OrderID, OrderNo: req.OrderNo, Amount: req.Amount,
		Carriage: req.Carriage, Status: req.Status, Seller: req.Seller}
	for _, so := range req.SubOrders {
		v := so
		o.SubOrders = append(o.SubOrders, &v)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.addOrderLocked(o); err != nil {
		return nil, adminFromErr(err)
	}
	s.emitOrderLocked(o, platform.KindOrderStatus)
	return o.clone(), nil
}

// findOrderLocked looks an order up by id, on ?platform= or on either platform.
func (s *Sandbox) findOrderLocked(r *http.Request) (*Order, *adminError) {
	id := r.PathValue("orderId")
	platforms := []string{PlatformTaobao, Platform1688}
	if p := r.URL.Query().Get("platform"); p != "" {
		if p != PlatformTaobao && p != Platform1688 {
			return nil, adminErr(http.StatusBadRequest, AdminInvalidArgument, "platform %q: want taobao or 1688", excerpt.Of(p, 20))
		}
		platforms = []string{p}
	}
	for _, p := range platforms {
		if o := s.orders[orderKey(p, id)]; o != nil {
			return o, nil
		}
	}
	return nil, adminErr(http.StatusNotFound, AdminNotFound, "order %s not found", excerpt.Of(id, 50))
}

func (s *Sandbox) adminGetOrder(r *http.Request) (any, *adminError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, e := s.findOrderLocked(r)
	if e != nil {
		return nil, e
	}
	return o.clone(), nil
}

// OrderEvent is the body of POST /_sandbox/orders/{orderId}/events.
type OrderEvent struct {
	Type        string `json:"type"`         // pay, cancel, price_modify
	TotalAmount int64  `json:"total_amount"` // price_modify: new total incl. carriage, fen
	CloseReason string `json:"close_reason"` // cancel: default buyer_cancel
}

func (s *Sandbox) adminOrderEvent(r *http.Request) (any, *adminError) {
	var ev OrderEvent
	if e := decodeAdmin(r, &ev); e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, e := s.findOrderLocked(r)
	if e != nil {
		return nil, e
	}
	switch ev.Type {
	case "pay":
		if o.Status != OrderWaitingForPayment {
			return nil, adminErr(http.StatusConflict, AdminIllegalState, "order %s is %s; pay needs %s", o.OrderID, o.Status, OrderWaitingForPayment)
		}
		now := s.now()
		o.Status, o.PaidAt = OrderWaitingForSent, &now
		s.emitOrderLocked(o, platform.KindOrderStatus)
	case "cancel":
		if o.Status == OrderCancel {
			return nil, adminErr(http.StatusConflict, AdminIllegalState, "order %s is already cancelled", o.OrderID)
		}
		for _, id := range o.RefundIDs {
			if ref := s.refunds[id]; ref != nil && !ref.terminal() {
				return nil, adminErr(http.StatusConflict, AdminIllegalState, "order %s has open refund %s", o.OrderID, id)
			}
		}
		if ev.CloseReason == "" {
			ev.CloseReason = "buyer_cancel"
		}
		if len(ev.CloseReason) > 100 {
			return nil, adminErr(http.StatusBadRequest, AdminInvalidArgument, "close_reason longer than 100 bytes")
		}
		o.Status, o.CloseReason = OrderCancel, ev.CloseReason
		s.emitOrderLocked(o, platform.KindOrderStatus)
	case "price_modify":
		if o.Status != OrderWaitingForPayment {
			return nil, adminErr(http.StatusConflict, AdminIllegalState, "order %s is %s; price_modify needs %s", o.OrderID, o.Status, OrderWaitingForPayment)
		}
		if ev.TotalAmount <= o.Carriage || ev.TotalAmount > 1e12 {
			return nil, adminErr(http.StatusBadRequest, AdminInvalidArgument, "total_amount %d: want more than the carriage %d", ev.TotalAmount, o.Carriage)
		}
		o.Amount = ev.TotalAmount - o.Carriage
		s.emitOrderLocked(o, platform.KindPriceModify)
	default:
		return nil, adminErr(http.StatusBadRequest, AdminInvalidArgument, "type %q: want pay, cancel or price_modify", excerpt.Of(ev.Type, 30))
	}
	return o.clone(), nil
}

func (s *Sandbox) adminGetRefund(r *http.Request) (any, *adminError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ref := s.refunds[r.PathValue("refundId")]
	if ref == nil {
		return nil, adminErr(http.StatusNotFound, AdminNotFound, "refund %s not found", excerpt.Of(r.PathValue("refundId"), 50))
	}
	return ref.clone(), nil
}

// RefundAction is the body of POST /_sandbox/refunds/{refundId}/actions.
type RefundAction struct {
	Action string `json:"action"` // agree, refuse, require_return, receive, close, change_return_waybill
	Reason string `json:"reason"` // refuse reason
	// Waybill is change_return_waybill's new return waybill: the buyer
	// correcting the return's logistics on the platform itself, which
	// the worker learns only by reading the refund.
	Waybill string `json:"waybill"`
}

func (s *Sandbox) adminRefundAction(r *http.Request) (any, *adminError) {
	var a RefundAction
	if e := decodeAdmin(r, &a); e != nil {
		return nil, e
	}
	if len([]rune(a.Reason)) > 200 {
		return nil, adminErr(http.StatusBadRequest, AdminInvalidArgument, "reason longer than 200 characters")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ref := s.refunds[r.PathValue("refundId")]
	if ref == nil {
		return nil, adminErr(http.StatusNotFound, AdminNotFound, "refund %s not found", excerpt.Of(r.PathValue("refundId"), 50))
	}
	var e *apiError
	switch a.Action {
	case "agree":
		e = s.sellerAgreeLocked(ref)
	case "refuse":
		reason := a.Reason
		if reason == "" {
			reason = s.policyLocked(s.orderOfLocked(ref)).RefuseReason
		}
		e = s.sellerRefuseLocked(ref, reason)
	case "require_return":
		e = s.sellerRequireReturnLocked(ref)
	case "receive":
		e = s.sellerReceiveLocked(ref)
	case "close":
		e = s.closeLocked(ref, "退款关闭")
	case "change_return_waybill":
		if !validTracking(a.Waybill) {
			return nil, adminErr(http.StatusBadRequest, AdminInvalidArgument, "waybill %q: want 6-40 letters or digits", excerpt.Of(a.Waybill, 50))
		}
		if ref.Return == nil {
			return nil, adminErr(http.StatusConflict, AdminIllegalState, "refund %s has no return logistics to change", ref.RefundID)
		}
		ref.Return.TrackingNo = a.Waybill
	default:
		return nil, adminErr(http.StatusBadRequest, AdminInvalidArgument,
			"action %q: want agree, refuse, require_return, receive, close or change_return_waybill", excerpt.Of(a.Action, 30))
	}
	if e != nil {
		return nil, adminErr(http.StatusConflict, AdminIllegalState, "%s", e.Msg)
	}
	return ref.clone(), nil
}
