// The operator's documents: the requested refund and the reported return
// shipment, their validation, and how their words map onto each platform's.

package refundflow

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/refundhub/refundhub/internal/excerpt"
	"github.com/refundhub/refundhub/internal/platform"
)

// Request is the operator's requested refund, stored with the case (cases.request).
type Request struct {
	// ReturnGoods asks for return and refund (Taobao refundType 2, 1688
	// disputeRequest returnRefund); false asks for a refund only.
	ReturnGoods bool `json:"returnGoods"`
	// GoodsStatus is the operator's word for where the goods are. Taobao:
	// "1" not shipped, "2" shipped not received, "3" received; 1688: one of
	// refundWaitSellerSend, refundWaitBuyerReceive, refundBuyerReceived,
	// aftersaleBuyerNotReceived, aftersaleBuyerReceived (Alibaba's names, as
	// 1688 buyers know them). These are the product's vocabulary: the
	// platform profile gives the value each is sent as.
	GoodsStatus string `json:"goodsStatus"`
	// ReasonID or Reason (the reason's text) selects one of the reasons the
	// platform offers; the refund goes to needs_attention if none matches.
	ReasonID int64  `json:"reasonId,omitempty"`
	Reason   string `json:"reason,omitempty"`
	// Amount in fen. Taobao: 0 means the most the form allows; otherwise it
	// must lie within the rendered bounds. 1688: required (no bounds are rendered).
	Amount int64 `json:"amount"`
	// Carriage is the freight to claim back (1688 applyCarriage), fen.
	Carriage    int64  `json:"carriage,omitempty"`
	Description string `json:"description"`
	// Vouchers are evidence images: uploaded first on 1688 when the reason
	// needs them; sent as refundImages on Taobao.
	Vouchers []string `json:"vouchers,omitempty"`
	// OrderEntryIDs are the 1688 sub-orders concerned (optional).
	OrderEntryIDs []int64 `json:"orderEntryIds,omitempty"`
}

// alibabaGoods is the operator's 1688 goods-status vocabulary in lifecycle
// order: each word, the profile value it is sent as, and whether the buyer
// has the goods (only then does 1688 take a return).
var alibabaGoods = []struct {
	word     string
	wire     func(platform.AlibabaGoodsStatuses) string
	received bool
}{
	{"refundWaitSellerSend", func(g platform.AlibabaGoodsStatuses) string { return g.InSaleWaitSellerSend }, false},
	{"refundWaitBuyerReceive", func(g platform.AlibabaGoodsStatuses) string { return g.InSaleWaitBuyerReceive }, false},
	{"refundBuyerReceived", func(g platform.AlibabaGoodsStatuses) string { return g.InSaleBuyerReceived }, true},
	{"aftersaleBuyerNotReceived", func(g platform.AlibabaGoodsStatuses) string { return g.AfterSaleNotReceived }, false},
	{"aftersaleBuyerReceived", func(g platform.AlibabaGoodsStatuses) string { return g.AfterSaleReceived }, true},
}

// alibabaGoodsWords lists the vocabulary, for messages.
func alibabaGoodsWords() []string {
	out := make([]string, len(alibabaGoods))
	for i, g := range alibabaGoods {
		out[i] = g.word
	}
	return out
}

// alibabaGoodsReceived reports whether word is known and says the buyer has the goods.
func alibabaGoodsReceived(word string) (known, received bool) {
	for _, g := range alibabaGoods {
		if g.word == word {
			return true, g.received
		}
	}
	return false, false
}

// alibabaGoodsWire is the value the profile sends for an operator's 1688
// goods status ("" for a word outside the vocabulary).
func alibabaGoodsWire(prof *platform.Profile, word string) string {
	for _, g := range alibabaGoods {
		if g.word == word {
			return g.wire(prof.Alibaba.GoodsStatus)
		}
	}
	return ""
}

// taobaoGoodsWire is the integer the profile sends for an operator's Taobao
// goods status (0 for a code outside the vocabulary).
func taobaoGoodsWire(prof *platform.Profile, code string) int {
	g := prof.Taobao.GoodsStatus
	switch code {
	case "1":
		return g.NotShipped
	case "2":
		return g.NotReceived
	case "3":
		return g.Received
	}
	return 0
}

// taobaoRefundType is the refundType the profile sends for a refund only or
// a return and refund.
func taobaoRefundType(prof *platform.Profile, returnGoods bool) int {
	if returnGoods {
		return prof.Taobao.RefundType.ReturnAndRefund
	}
	return prof.Taobao.RefundType.RefundOnly
}

// alibabaDispute is the disputeRequest the profile sends.
func alibabaDispute(prof *platform.Profile, returnGoods bool) string {
	if returnGoods {
		return prof.Alibaba.DisputeRequest.ReturnRefund
	}
	return prof.Alibaba.DisputeRequest.Refund
}

// Limits on operator input.
const (
	maxDescription = 500
	maxMessage     = 500
	maxVouchers    = 5
	maxField       = 64
)

// Validate checks the request for the platform; a bad request is rejected
// before anything is sent.
func (r Request) Validate(p Platform) error {
	var errs []error
	switch p {
	case PlatformTaobao:
		if r.GoodsStatus != "1" && r.GoodsStatus != "2" && r.GoodsStatus != "3" {
			errs = append(errs, fmt.Errorf("goodsStatus %q: want 1, 2 or 3", excerpt.Of(r.GoodsStatus, 40)))
		}
		if r.Amount < 0 {
			errs = append(errs, errors.New("amount: must not be negative"))
		}
		if r.Carriage != 0 {
			errs = append(errs, errors.New("carriage: only for 1688"))
		}
		if len(r.OrderEntryIDs) > 0 {
			errs = append(errs, errors.New("orderEntryIds: only for 1688"))
		}
	case Platform1688:
		known, received := alibabaGoodsReceived(r.GoodsStatus)
		if !known {
			errs = append(errs, fmt.Errorf("goodsStatus %q: want one of %s", excerpt.Of(r.GoodsStatus, 40), strings.Join(alibabaGoodsWords(), ", ")))
		}
		if r.Amount <= 0 {
			errs = append(errs, errors.New("amount: required for 1688 (fen, > 0)"))
		}
		if r.Carriage < 0 {
			errs = append(errs, errors.New("carriage: must not be negative"))
		}
		if r.ReturnGoods && known && !received {
			errs = append(errs, errors.New("returnGoods: only once the goods were received"))
		}
		if n := utf8.RuneCountInString(r.Description); n < 2 || n > 150 {
			errs = append(errs, errors.New("description: 2 to 150 characters on 1688"))
		}
		for _, id := range r.OrderEntryIDs {
			if id <= 0 {
				errs = append(errs, errors.New("orderEntryIds: must be positive"))
				break
			}
		}
	default:
		return fmt.Errorf("platform %q: want taobao or 1688", excerpt.Of(string(p), 40))
	}
	if r.ReasonID < 0 {
		errs = append(errs, errors.New("reasonId: must not be negative"))
	}
	if r.ReasonID == 0 && strings.TrimSpace(r.Reason) == "" {
		errs = append(errs, errors.New("reason: give reasonId or reason"))
	}
	if utf8.RuneCountInString(r.Reason) > maxField*2 || !utf8.ValidString(r.Reason) {
		errs = append(errs, errors.New("reason: too long or not UTF-8"))
	}
	if utf8.RuneCountInString(r.Description) > maxDescription || !utf8.ValidString(r.Description) {
		errs = append(errs, fmt.Errorf("description: at most %d characters of UTF-8", maxDescription))
	}
	if len(r.Vouchers) > maxVouchers {
		errs = append(errs, fmt.Errorf("vouchers: at most %d", maxVouchers))
	}
	for _, v := range r.Vouchers {
		if v == "" || len(v) > 1024 {
			errs = append(errs, errors.New("vouchers: empty or too long reference"))
			break
		}
	}
	return errors.Join(errs...)
}

// Shipment is the return shipment the operator reports (cases.shipment).
type Shipment struct {
	Company     string `json:"company"` // carrier code (Taobao logisticsCompanyCode, 1688 companyNo)
	Waybill     string `json:"waybill"`
	Phone       string `json:"phone,omitempty"`
	Description string `json:"description,omitempty"`
}

// Validate checks the shipment.
func (s Shipment) Validate() error {
	var errs []error
	if !printable(s.Company, maxField) {
		errs = append(errs, errors.New("company: 1 to 64 printable characters"))
	}
	if !printable(s.Waybill, maxField) {
		errs = append(errs, errors.New("waybill: 1 to 64 printable characters"))
	}
	if s.Phone != "" && !printable(s.Phone, 32) {
		errs = append(errs, errors.New("phone: at most 32 printable characters"))
	}
	if utf8.RuneCountInString(s.Description) > 200 || !utf8.ValidString(s.Description) {
		errs = append(errs, errors.New("description: at most 200 characters of UTF-8"))
	}
	return errors.Join(errs...)
}

func printable(s string, max int) bool {
	if s == "" || len(s) > max || !utf8.ValidString(s) || strings.TrimSpace(s) != s {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// AmountMax is the operator's word for "the most the rendered form allows"
// (Request.Amount and Modification.Amount 0), Taobao only.
const AmountMax = "max"

// ParseAmount reads an amount as operators write it, for platform p: fen
// (a whole number) or AmountMax. Errors name no field: callers say which.
func ParseAmount(p Platform, s string) (int64, error) {
	if s == AmountMax {
		if p == Platform1688 {
			return 0, errors.New("max: Taobao only; 1688 needs the amount in fen")
		}
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q: want fen (a whole number, e.g. 9500 for 95.00) or max", excerpt.Of(s, 40))
	}
	return n, nil
}
