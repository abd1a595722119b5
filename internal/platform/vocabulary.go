package platform

// The product's own words for what the platform says. Code decides on these;
// the platform's wire values for them are in the profile.

// Phase is where a refund stands on the platform, whatever the platform
// calls it. Both platforms map their statuses onto these six.
type Phase string

// Refund phases.
const (
	PhaseWaitSellerAgree   Phase = "wait_seller_agree"   // filed; the seller has not decided
	PhaseSellerRefused     Phase = "seller_refused"      // the seller refused; the buyer may modify or cancel
	PhaseWaitBuyerReturn   Phase = "wait_buyer_return"   // agreed with return: the buyer must ship the goods back
	PhaseWaitSellerReceive Phase = "wait_seller_receive" // returned goods on their way to the seller
	PhaseSuccess           Phase = "success"             // refunded
	PhaseClosed            Phase = "closed"              // closed without a refund
)

// Phases lists every phase; each must be mapped for both platforms.
func Phases() []Phase {
	return []Phase{PhaseWaitSellerAgree, PhaseSellerRefused, PhaseWaitBuyerReturn,
		PhaseWaitSellerReceive, PhaseSuccess, PhaseClosed}
}

// Terminal reports whether no seller or buyer action can change the refund.
func (p Phase) Terminal() bool { return p == PhaseSuccess || p == PhaseClosed }

// ErrorClass is what a failing envelope code means to the product.
type ErrorClass string

// Error classes. ClassUnknown is a code the profile does not list.
const (
	ClassUnknown              ErrorClass = ""
	ClassMalformedRequest     ErrorClass = "malformed_request"
	ClassMissingField         ErrorClass = "missing_field"
	ClassInvalidField         ErrorClass = "invalid_field"
	ClassAuthMissing          ErrorClass = "auth_missing"
	ClassAuthUnknownKey       ErrorClass = "auth_unknown_key"
	ClassAuthBadSignature     ErrorClass = "auth_bad_signature"
	ClassAuthExpiredTimestamp ErrorClass = "auth_expired_timestamp"
	ClassNotFound             ErrorClass = "not_found"
	ClassIllegalState         ErrorClass = "illegal_state"
	ClassDuplicateRefund      ErrorClass = "duplicate_refund"
	ClassRateLimited          ErrorClass = "rate_limited"
	ClassInternal             ErrorClass = "internal"
)

// Auth reports whether the class is an authentication failure.
func (c ErrorClass) Auth() bool {
	switch c {
	case ClassAuthMissing, ClassAuthUnknownKey, ClassAuthBadSignature, ClassAuthExpiredTimestamp:
		return true
	}
	return false
}

// ErrorCodes lists the codes of each class, and which classes are retryable
// and which prove a call had no effect.
type ErrorCodes struct {
	MalformedRequest     []int        `toml:"malformed_request"`
	MissingField         []int        `toml:"missing_field"`
	InvalidField         []int        `toml:"invalid_field"`
	AuthMissing          []int        `toml:"auth_missing"`
	AuthUnknownKey       []int        `toml:"auth_unknown_key"`
	AuthBadSignature     []int        `toml:"auth_bad_signature"`
	AuthExpiredTimestamp []int        `toml:"auth_expired_timestamp"`
	NotFound             []int        `toml:"not_found"`
	IllegalState         []int        `toml:"illegal_state"`
	DuplicateRefund      []int        `toml:"duplicate_refund"`
	RateLimited          []int        `toml:"rate_limited"`
	Internal             []int        `toml:"internal"`
	Retryable            []ErrorClass `toml:"retryable"`
	NotApplied           []ErrorClass `toml:"not_applied"`
}

// classes returns each class with its codes, in the file's order.
func (e *ErrorCodes) classes() []struct {
	Class ErrorClass
	Codes []int
} {
	return []struct {
		Class ErrorClass
		Codes []int
	}{
		{ClassMalformedRequest, e.MalformedRequest}, {ClassMissingField, e.MissingField},
		{ClassInvalidField, e.InvalidField}, {ClassAuthMissing, e.AuthMissing},
		{ClassAuthUnknownKey, e.AuthUnknownKey}, {ClassAuthBadSignature, e.AuthBadSignature},
		{ClassAuthExpiredTimestamp, e.AuthExpiredTimestamp}, {ClassNotFound, e.NotFound},
		{ClassIllegalState, e.IllegalState}, {ClassDuplicateRefund, e.DuplicateRefund},
		{ClassRateLimited, e.RateLimited}, {ClassInternal, e.Internal},
	}
}

// Endpoint names an after-sales endpoint (the profile's [endpoints.*] key).
type Endpoint string

// Endpoints. T* and A* refer to the tables of docs/platform.md.
const (
	TaobaoList                  Endpoint = "taobao_list"                    // T1
	TaobaoRender                Endpoint = "taobao_render"                  // T2
	TaobaoReturnLogisticsRender Endpoint = "taobao_return_logistics_render" // T3
	TaobaoReturnLogisticsSubmit Endpoint = "taobao_return_logistics_submit" // T4
	TaobaoCancel                Endpoint = "taobao_cancel"                  // T5
	TaobaoSubmitMessage         Endpoint = "taobao_submit_message"          // T6
	TaobaoSubmit                Endpoint = "taobao_submit"                  // T7
	TaobaoListMessages          Endpoint = "taobao_list_messages"           // T8
	TaobaoModify                Endpoint = "taobao_modify"                  // T9
	TaobaoQuery                 Endpoint = "taobao_query"                   // T10
	AlibabaRefundInfo           Endpoint = "alibaba_refund_info"            // A1
	AlibabaRefundReasons        Endpoint = "alibaba_refund_reasons"         // A2
	AlibabaUploadVoucher        Endpoint = "alibaba_upload_voucher"         // A3
	AlibabaCreateRefund         Endpoint = "alibaba_create_refund"          // A4
	AlibabaGoodsReturn          Endpoint = "alibaba_goods_return"           // A5
	AlibabaLogisticsCompanies   Endpoint = "alibaba_logistics_companies"    // A6
)

// AllEndpoints lists every endpoint; each must be in the profile.
func AllEndpoints() []Endpoint {
	return []Endpoint{TaobaoList, TaobaoRender, TaobaoReturnLogisticsRender, TaobaoReturnLogisticsSubmit,
		TaobaoCancel, TaobaoSubmitMessage, TaobaoSubmit, TaobaoListMessages, TaobaoModify, TaobaoQuery,
		AlibabaRefundInfo, AlibabaRefundReasons, AlibabaUploadVoucher, AlibabaCreateRefund,
		AlibabaGoodsReturn, AlibabaLogisticsCompanies}
}

// SideEffect reports whether calling the endpoint can change anything on the
// platform. `refundctl doctor` calls only endpoints for which it is false.
func (e Endpoint) SideEffect() bool {
	switch e {
	case TaobaoList, TaobaoRender, TaobaoReturnLogisticsRender, TaobaoQuery, TaobaoListMessages,
		AlibabaRefundInfo, AlibabaRefundReasons, AlibabaLogisticsCompanies:
		return false
	}
	return true
}

// Kind is what a callback message means to the product.
type Kind string

// Kinds of message.
const (
	KindOrderStatus Kind = "order_status"
	KindPriceModify Kind = "price_modify"
	KindRefund      Kind = "refund"
)

// Kinds lists every kind.
func Kinds() []Kind { return []Kind{KindOrderStatus, KindPriceModify, KindRefund} }

// Evidence tags, as in docs/platform.md.
var evidenceTags = []string{"DOC", "SEED", "UPSTREAM", "INFERRED", "UNKNOWN"}
