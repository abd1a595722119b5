package sandbox

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/refundhub/refundhub/internal/platform"
)

// Platforms as used in Order.Platform and the admin API.
const (
	PlatformTaobao = string(platform.Taobao)
	Platform1688   = string(platform.Alibaba1688)
)

// Order statuses used in order callbacks (reference §3.2: the first three are
// observed, the others are GUESSES).
const (
	OrderWaitingForPayment = "WAITING_FOR_PAYMENT"
	OrderWaitingForSent    = "WAITING_FOR_SENT"
	OrderWaitingForReceive = "WAITING_FOR_RECEIVE"
	OrderFinished          = "FINISHED"
	OrderCancel            = "CANCEL"
)

var orderStatuses = []string{OrderWaitingForPayment, OrderWaitingForSent, OrderWaitingForReceive, OrderFinished, OrderCancel}

// Order is a purchase order the sandbox knows, as created by POST
// /_sandbox/orders or on demand (Config.AutoCreate). Amounts are fen.
type Order struct {
	Platform    string        `json:"platform"`
	OrderID     string        `json:"order_id"`
	OrderNo     string        `json:"order_no"`
	SubOrders   []*SubOrder   `json:"sub_orders"`
	Amount      int64         `json:"amount"`   // product amount paid (sum of sub-orders when omitted)
	Carriage    int64         `json:"carriage"` // shipping fee paid
	Status      string        `json:"status"`
	Seller      *SellerPolicy `json:"seller,omitempty"` // overrides the global policy for this order
	Refunded    int64         `json:"refunded"`         // product amount refunded so far (1688)
	RefundedFee int64         `json:"refunded_carriage"`
	AutoCreated bool          `json:"auto_created"`
	CreatedAt   time.Time     `json:"created_at"`
	PaidAt      *time.Time    `json:"paid_at,omitempty"`
	CloseReason string        `json:"close_reason,omitempty"`
	RefundIDs   []string      `json:"refund_ids"`
}

// SubOrder is one line of an order. For Taobao it is what a refund targets.
type SubOrder struct {
	SubOrderID string `json:"sub_order_id"`
	Amount     int64  `json:"amount"`   // paid for the goods, fen
	PostFee    int64  `json:"post_fee"` // fen
	Title      string `json:"title"`
	Quantity   int    `json:"quantity"`
	Refunded   int64  `json:"refunded"` // refunded so far (successful Taobao refunds)
}

func (o *Order) paid() bool {
	return o.Status != OrderWaitingForPayment && o.Status != OrderCancel
}

func (o *Order) subOrder(id string) *SubOrder {
	for _, so := range o.SubOrders {
		if so.SubOrderID == id {
			return so
		}
	}
	return nil
}

func (o *Order) clone() *Order {
	c := *o
	c.SubOrders = make([]*SubOrder, len(o.SubOrders))
	for i, so := range o.SubOrders {
		v := *so
		c.SubOrders[i] = &v
	}
	if o.Seller != nil {
		p := *o.Seller
		c.Seller = &p
	}
	c.RefundIDs = append([]string(nil), o.RefundIDs...)
	return &c
}

// Refund is a refund (Taobao reverse order or 1688 after-sales order) and its history.
//
// Phase is the sandbox's own state; Status is what the platform calls it
// under the profile (taobao.refund_status / alibaba.refund_status: the
// first name of the phase), kept for readers of the admin API.
type Refund struct {
	Platform   string           `json:"platform"`
	RefundID   string           `json:"refund_id"`
	OrderID    string           `json:"order_id"`
	SubOrderID string           `json:"sub_order_id,omitempty"` // Taobao
	Phase      platform.Phase   `json:"phase"`
	Status     string           `json:"status"`
	CreatedAt  time.Time        `json:"created_at"`
	ModifiedAt time.Time        `json:"modified_at"`
	ClosedAt   time.Time        `json:"closed_at,omitzero"`
	History    []platform.Phase `json:"history"` // phases in order

	// Taobao request (refundType and goodsStatus are the profile's integers).
	RefundType   int    `json:"refund_type,omitempty"`
	GoodsStatus  int    `json:"goods_status,omitempty"`
	ReasonID     int    `json:"reason_id,omitempty"`
	ReasonDesc   string `json:"reason_desc,omitempty"`
	RefundFee    int64  `json:"refund_fee,omitempty"`
	RefundDesc   string `json:"refund_desc,omitempty"`
	RefundImages string `json:"refund_images,omitempty"`

	// 1688 request (disputeRequest and goodsStatus are the profile's strings).
	DisputeRequest string   `json:"dispute_request,omitempty"`
	GoodsStatusStr string   `json:"goods_status_1688,omitempty"`
	ApplyPayment   int64    `json:"apply_payment,omitempty"`
	ApplyCarriage  int64    `json:"apply_carriage,omitempty"`
	ApplyReasonID  int64    `json:"apply_reason_id,omitempty"`
	ApplyReason    string   `json:"apply_reason,omitempty"`
	Description    string   `json:"description,omitempty"`
	Vouchers       []string `json:"vouchers,omitempty"`
	OrderEntryIDs  []int64  `json:"order_entry_ids,omitempty"`

	// Seller side.
	ReturnRequired bool   `json:"return_required"`
	RefuseReason   string `json:"refuse_reason,omitempty"`
	RejectTimes    int    `json:"reject_times,omitempty"`
	RefundedAmount int64  `json:"refunded_amount"` // paid back on success

	// Return shipment.
	Return *ReturnShipment `json:"return,omitempty"`

	Messages []Message `json:"messages"`

	seq uint64 // bumps on every change; scheduled decisions for an older seq are stale
}

// ReturnShipment is the buyer's return of the goods.
type ReturnShipment struct {
	CompanyCode string    `json:"company_code"`
	CompanyName string    `json:"company_name"`
	TrackingNo  string    `json:"tracking_no"`
	BuyerPhone  string    `json:"buyer_phone,omitempty"`
	Description string    `json:"description,omitempty"`
	Vouchers    []string  `json:"vouchers,omitempty"`
	SubmittedAt time.Time `json:"submitted_at"`
}

// Message is a message on a Taobao reverse order.
type Message struct {
	ID        string    `json:"id"`
	Owner     string    `json:"owner"` // OwnerBuyer, OwnerSeller, OwnerSystem
	Content   string    `json:"content"`
	Images    string    `json:"images,omitempty"` // comma-separated URLs (the sandbox's guess at T6/T8's format)
	CreatedAt time.Time `json:"created_at"`
}

// Message owners, as T8 writes them (the field and its values are the
// sandbox's guess: the documentation leaves T8's response UNKNOWN).
// OwnerSystem is the platform's own voice: its notes on transitions and
// what an operator writes as author "platform".
const (
	OwnerBuyer  = "buyer"
	OwnerSeller = "seller"
	OwnerSystem = "system"
)

func (r *Refund) clone() *Refund {
	c := *r
	c.History = append([]platform.Phase(nil), r.History...)
	c.Vouchers = append([]string(nil), r.Vouchers...)
	c.OrderEntryIDs = append([]int64(nil), r.OrderEntryIDs...)
	c.Messages = append([]Message(nil), r.Messages...)
	if r.Return != nil {
		v := *r.Return
		v.Vouchers = append([]string(nil), r.Return.Vouchers...)
		c.Return = &v
	}
	return &c
}

func orderKey(platform, id string) string { return platform + ":" + id }

// openKey is the key of Stats.RefundSubmissions and of the one-open-refund rule.
func (r *Refund) openKey() string {
	if r.Platform == PlatformTaobao {
		return PlatformTaobao + ":" + r.SubOrderID
	}
	return Platform1688 + ":" + r.OrderID
}

// Errors of the Go admin API (SeedRefund, and order creation behind POST
// /_sandbox/orders), exported so a test can tell a clash from a mistake. The
// admin HTTP API answers them as not_found (404), conflict (409) and
// illegal_state (409); any other error is invalid_argument (400).
var (
	ErrNotFound     = errors.New("not found")     // the order or sub-order is unknown (and AutoCreate is off)
	ErrConflict     = errors.New("conflict")      // the id is taken, or an open refund already holds the sub-order/order
	ErrIllegalState = errors.New("illegal state") // the order's state does not allow the refund (unpaid, cancelled)
)

// addOrderLocked fills o's defaults, validates it (checkOrder) and stores
// it. Callers hold s.mu.
func (s *Sandbox) addOrderLocked(o *Order) error {
	switch o.Platform {
	case PlatformTaobao, Platform1688:
	default:
		return fmt.Errorf("platform %q: want taobao or 1688", o.Platform)
	}
	if o.OrderID == "" {
		// Not one taken: a fixed SANDBOX_SEED draws the same ids again
		// after a restart that kept the orders (Config.StateFile).
		o.OrderID = s.randDigits(19)
		for s.orders[orderKey(o.Platform, o.OrderID)] != nil {
			o.OrderID = s.randDigits(19)
		}
	}
	// A clash, or too many lines, before any default is drawn.
	if _, ok := s.orders[orderKey(o.Platform, o.OrderID)]; ok {
		return fmt.Errorf("%w: order %s %s already exists", ErrConflict, o.Platform, o.OrderID)
	}
	if len(o.SubOrders) > 100 {
		return fmt.Errorf("at most 100 sub_orders")
	}
	if o.Status == "" {
		o.Status = OrderWaitingForSent
	}
	if o.Seller != nil {
		p, err := normalizeSeller(*o.Seller)
		if err != nil {
			return err
		}
		o.Seller = &p
	}
	if len(o.SubOrders) == 0 {
		amount := o.Amount
		if amount == 0 {
			amount = DefaultOrderAmount
		}
		o.SubOrders = []*SubOrder{{SubOrderID: s.newSubOrderID(o.Platform), Amount: amount}}
	}
	var sum int64
	for i, so := range o.SubOrders {
		if so == nil {
			return fmt.Errorf("sub_orders[%d] is null", i)
		}
		if so.SubOrderID == "" {
			so.SubOrderID = s.newSubOrderID(o.Platform)
		}
		if so.Amount == 0 {
			so.Amount = DefaultOrderAmount
		}
		if so.Quantity == 0 {
			so.Quantity = 1
		}
		if so.Title == "" {
			so.Title = "沙箱商品 " + so.SubOrderID
		}
		so.Refunded = 0
		sum += so.Amount
	}
	if err := checkOrder(o); err != nil {
		return err
	}
	if o.Platform == PlatformTaobao {
		for i, so := range o.SubOrders {
			if _, ok := s.subOrders[so.SubOrderID]; ok {
				return fmt.Errorf("%w: sub_orders[%d].sub_order_id %q belongs to another order", ErrConflict, i, so.SubOrderID)
			}
		}
	}
	if o.Amount == 0 {
		o.Amount = sum
	}
	if o.OrderNo == "" {
		o.OrderNo = s.newOrderNoLocked()
	}
	o.Refunded, o.RefundedFee, o.RefundIDs = 0, 0, nil
	o.CreatedAt = s.now()
	if o.paid() {
		t := o.CreatedAt
		o.PaidAt = &t
	}
	s.orders[orderKey(o.Platform, o.OrderID)] = o
	if o.Platform == PlatformTaobao {
		for _, so := range o.SubOrders {
			s.subOrders[so.SubOrderID] = o
		}
	}
	return nil
}

// checkOrder checks an order as the sandbox keeps it, its defaults filled:
// a new one (addOrderLocked) and one read back from the state file
// (restore), on which every handler then relies.
func checkOrder(o *Order) error {
	switch o.Platform {
	case PlatformTaobao, Platform1688:
	default:
		return fmt.Errorf("platform %q: want taobao or 1688", o.Platform)
	}
	if !validID(o.OrderID) {
		return fmt.Errorf("order_id %q: want 1-40 characters of [0-9A-Za-z_-]", o.OrderID)
	}
	if o.Platform == Platform1688 {
		if n, err := strconv.ParseInt(o.OrderID, 10, 64); err != nil || n <= 0 {
			return fmt.Errorf("order_id %q: 1688 order ids are positive integers", o.OrderID)
		}
	}
	if !slices.Contains(orderStatuses, o.Status) {
		return fmt.Errorf("status %q: want one of %v", o.Status, orderStatuses)
	}
	if o.Amount < 0 || o.Carriage < 0 || o.Amount > 1e12 || o.Carriage > 1e12 {
		return fmt.Errorf("amount and carriage must be between 0 and 1e12 fen")
	}
	if len(o.SubOrders) > 100 {
		return fmt.Errorf("at most 100 sub_orders")
	}
	if len(o.SubOrders) == 0 {
		return fmt.Errorf("no sub_orders")
	}
	seen := map[string]bool{}
	for i, so := range o.SubOrders {
		if so == nil {
			return fmt.Errorf("sub_orders[%d] is null", i)
		}
		if !validID(so.SubOrderID) {
			return fmt.Errorf("sub_orders[%d].sub_order_id %q: want 1-40 characters of [0-9A-Za-z_-]", i, so.SubOrderID)
		}
		if o.Platform == Platform1688 {
			if n, err := strconv.ParseInt(so.SubOrderID, 10, 64); err != nil || n <= 0 {
				return fmt.Errorf("sub_orders[%d].sub_order_id %q: 1688 ids are positive integers", i, so.SubOrderID)
			}
		}
		if seen[so.SubOrderID] {
			return fmt.Errorf("sub_orders[%d].sub_order_id %q is repeated", i, so.SubOrderID)
		}
		seen[so.SubOrderID] = true
		if so.Amount < 0 || so.PostFee < 0 || so.Amount > 1e12 || so.PostFee > 1e12 || so.Refunded < 0 || so.Refunded > 1e12 {
			return fmt.Errorf("sub_orders[%d]: amount and post_fee must be between 0 and 1e12 fen", i)
		}
		if so.Quantity < 0 || so.Quantity > 1e6 {
			return fmt.Errorf("sub_orders[%d].quantity %d out of range", i, so.Quantity)
		}
		if len(so.Title) > 500 {
			return fmt.Errorf("sub_orders[%d].title longer than 500 bytes", i)
		}
	}
	if o.Refunded < 0 || o.RefundedFee < 0 || o.Refunded > 1e12 || o.RefundedFee > 1e12 {
		return fmt.Errorf("refunded amounts must be between 0 and 1e12 fen")
	}
	return nil
}

// newOrderNoLocked is an order number no order has: PO, the day in the
// platform's zone, six digits.
func (s *Sandbox) newOrderNoLocked() string {
	for {
		no := "PO" + s.now().In(s.prof.Zone()).Format("20060102") + s.randDigits(6)
		taken := false
		for _, o := range s.orders {
			if o.OrderNo == no {
				taken = true
				break
			}
		}
		if !taken {
			return no
		}
	}
}

func (s *Sandbox) newSubOrderID(platform string) string {
	for {
		id := s.randDigits(19)
		if platform == PlatformTaobao {
			if _, ok := s.subOrders[id]; ok {
				continue
			}
		}
		return id
	}
}

// validID accepts the ids the sandbox stores: 1-40 characters of [0-9A-Za-z_-].
func validID(id string) bool {
	if len(id) == 0 || len(id) > 40 {
		return false
	}
	for _, c := range id {
		ok := c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}
