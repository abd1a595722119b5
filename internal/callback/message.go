// Package callback defines the platform's push messages (reference §3): the
// envelope, the known message types and their typed bodies, and how the
// receiver validates them.
package callback

import (
	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/platform"
)

// Platform is the envelope's messagePlatform as sent: 0 Taobao, 1 1688
// (the wire value; ID names the platform everywhere else).
type Platform int

// Platforms (reference §3.2).
const (
	PlatformTaobao  Platform = platform.MessagePlatformTaobao
	Platform1688    Platform = platform.MessagePlatform1688
	platformUnknown Platform = -1
)

// ID returns the platform's name, "" for an unknown value.
func (p Platform) ID() platform.ID {
	switch p {
	case PlatformTaobao:
		return platform.Taobao
	case Platform1688:
		return platform.Alibaba1688
	}
	return ""
}

// String returns the platform's name ("taobao", "1688"), used in subjects,
// metrics and the CLI; "unknown" for any other value.
func (p Platform) String() string {
	if id := p.ID(); id != "" {
		return string(id)
	}
	return "unknown"
}

// Envelope is a push as the platform sends it. MessageBody is a JSON object
// serialised as a string; Timestamp is milliseconds, documented as a string
// (the receiver also accepts a number).
type Envelope struct {
	MessageType     string   `json:"messageType"`
	MessageBody     string   `json:"messageBody"`
	MessagePlatform Platform `json:"messagePlatform"`
	Timestamp       string   `json:"timestamp"`
}

// DefaultMaxBytes is the default limit of one push's size in bytes (64 KiB;
// real pushes are well under 2 KiB). It lives here rather than in the
// receiver, which answers 413 above its limit, because the callback stream
// is sized from the same limit (its MaxMsgSize must fit a push), and the
// worker, which may create that stream, does not link the HTTP receiver.
const DefaultMaxBytes = 64 << 10

// Message types the documentation shows for 1688 (reference §3.2, DOC).
// Which names each platform sends, and what each means, is the platform
// profile's (callbacks.*.types; the Taobao names are UNKNOWN): the receiver
// and the worker read TypeNamesFromProfile. These constants serve the tools
// that play the platform (refundctl trigger).
const (
	TypeOrderCreate      = "ORDER_CREATE"
	TypeOrderCancel      = "ORDER_CANCEL"
	TypeOrderPaySuccess  = "ORDER_PAY_SUCCESS"
	TypeOrderPriceModify = "ORDER_BUYER_VIEW_ORDER_PRICE_MODIFY"
	TypeOrderRefund      = "ORDER_BUYER_VIEW_ORDER_BUYER_REFUND"
)

// Kind is what a message means to this product, independent of its wire
// name; the vocabulary is the platform package's.
type Kind = platform.Kind

// Kinds of message.
const (
	KindOrderStatus = platform.KindOrderStatus // ORDER_CREATE, ORDER_CANCEL, ORDER_PAY_SUCCESS, …
	KindPriceModify = platform.KindPriceModify
	KindRefund      = platform.KindRefund
)

// TypeNames maps wire message types to kinds, per platform. A type not
// listed for its platform is parked, not rejected.
type TypeNames map[Platform]map[string]Kind

// TypeNamesFromProfile returns the profile's message types per platform.
func TypeNamesFromProfile(p *platform.Profile) TypeNames {
	names := TypeNames{PlatformTaobao: {}, Platform1688: {}}
	for name, kind := range p.Callbacks.Taobao.Types {
		names[PlatformTaobao][name] = kind
	}
	for name, kind := range p.Callbacks.Alibaba.Types {
		names[Platform1688][name] = kind
	}
	return names
}

// DefaultTypeNames returns the built-in profile's message types.
func DefaultTypeNames() TypeNames { return TypeNamesFromProfile(platform.Default()) }

// OrderBody is the body of order status and price messages (reference §3.2).
// Amounts are fen.
type OrderBody struct {
	OrderID       apiclient.FlexString `json:"orderId"`
	OrderNo       string               `json:"orderNo"`
	OrderStatus   string               `json:"orderStatus"`
	PayStatus     int                  `json:"payStatus"`
	TotalAmount   apiclient.Amount     `json:"totalAmount"`
	ShippingFee   apiclient.Amount     `json:"shippingFee"`
	ProductAmount apiclient.Amount     `json:"productAmount"`
	RefundAmount  apiclient.Amount     `json:"refundAmount"`
	RefundStatus  apiclient.FlexString `json:"refundStatus"`
	CloseReason   *string              `json:"closeReason"`
	TbCreateTime  string               `json:"tbCreateTime"`
	PayTime       *string              `json:"payTime"`
}

// RefundBody is the body of after-sales refund messages. Only refundId and
// orderId are documented (the example is truncated after them); subOrderId
// (Taobao), refundStatus and refundAmount are INFERRED and optional.
type RefundBody struct {
	RefundID     apiclient.FlexString `json:"refundId"`
	OrderID      apiclient.FlexString `json:"orderId"`
	SubOrderID   apiclient.FlexString `json:"subOrderId,omitempty"`
	RefundStatus apiclient.FlexString `json:"refundStatus,omitempty"`
	RefundAmount apiclient.Amount     `json:"refundAmount,omitempty"`
}
