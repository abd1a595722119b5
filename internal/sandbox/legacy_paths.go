package sandbox

// Transitional: the sandbox's own copy of the endpoint names and paths it
// served before the platform profile existed. Issue 12 replaces it with the
// profile (internal/platform); nothing outside the sandbox uses it.

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"strings"
)

// Paths holds the path of every after-sales endpoint, relative to the base URL.
// Documented paths are the defaults; paths the documentation leaves UNKNOWN
// (reference §4.1, §5.1) are best guesses and can be overridden. The sandbox
// serves the same defaults. A path may contain {refundId}, filled from the call.
type Paths struct {
	// Taobao (reference §4).
	TaobaoList                  string // T1 POST, documented
	TaobaoRender                string // T2 POST, documented
	TaobaoReturnLogisticsRender string // T3 GET, guess
	TaobaoReturnLogisticsSubmit string // T4 POST, guess
	TaobaoCancel                string // T5 GET, documented (v2)
	TaobaoSubmitMessage         string // T6 POST, documented
	TaobaoSubmit                string // T7 POST, guess
	TaobaoListMessages          string // T8 POST, guess
	TaobaoModify                string // T9 POST, guess
	TaobaoQuery                 string // T10 GET, documented (v2)

	// 1688 (reference §5).
	AlibabaRefundInfo         string // A1 POST, documented
	AlibabaRefundReasons      string // A2 POST, guess
	AlibabaUploadVoucher      string // A3 POST multipart, guess
	AlibabaCreateRefund       string // A4 POST, documented
	AlibabaGoodsReturn        string // A5 POST, documented
	AlibabaLogisticsCompanies string // A6 GET, guess
}

// DefaultPaths returns the documented paths and the best guesses for the rest.
func DefaultPaths() Paths {
	return Paths{
		TaobaoList:                  "/open/order/refund/queryList",
		TaobaoRender:                "/open/order/refund/render",
		TaobaoReturnLogisticsRender: "/open/order/refund/logistics/render",
		TaobaoReturnLogisticsSubmit: "/open/order/refund/logistics/submit",
		TaobaoCancel:                "/v2/taobao/order/refund/cancel/{refundId}",
		TaobaoSubmitMessage:         "/open/order/refund/submit/message",
		TaobaoSubmit:                "/open/order/refund/submit",
		TaobaoListMessages:          "/open/order/refund/message/queryList",
		TaobaoModify:                "/open/order/refund/modify",
		TaobaoQuery:                 "/v2/taobao/order/refund/query",

		AlibabaRefundInfo:         "/alibaba/refund/info",
		AlibabaRefundReasons:      "/alibaba/refund/reason/list",
		AlibabaUploadVoucher:      "/alibaba/refund/voucher/upload",
		AlibabaCreateRefund:       "/alibaba/refund/detail/create",
		AlibabaGoodsReturn:        "/alibaba/refund/goods/return",
		AlibabaLogisticsCompanies: "/alibaba/logistics/company/list",
	}
}

// Guessed lists the endpoint names whose default path is a guess, for docs and -h output.
func (Paths) Guessed() []string {
	return []string{"TaobaoReturnLogisticsRender", "TaobaoReturnLogisticsSubmit", "TaobaoSubmit",
		"TaobaoListMessages", "TaobaoModify", "AlibabaRefundReasons", "AlibabaUploadVoucher",
		"AlibabaLogisticsCompanies"}
}

// Validate checks that every path is set and starts with '/'.
func (p Paths) Validate() error {
	for name, v := range p.byName() {
		if v == "" || !strings.HasPrefix(v, "/") {
			return fmt.Errorf("path %s = %q: must start with /", name, v)
		}
	}
	return nil
}

// ByName returns the paths keyed by endpoint name (the field names of Paths).
func (p Paths) ByName() map[string]string { return p.byName() }

func (p Paths) byName() map[string]string {
	return map[string]string{
		"TaobaoList": p.TaobaoList, "TaobaoRender": p.TaobaoRender,
		"TaobaoReturnLogisticsRender": p.TaobaoReturnLogisticsRender,
		"TaobaoReturnLogisticsSubmit": p.TaobaoReturnLogisticsSubmit,
		"TaobaoCancel":                p.TaobaoCancel, "TaobaoSubmitMessage": p.TaobaoSubmitMessage,
		"TaobaoSubmit": p.TaobaoSubmit, "TaobaoListMessages": p.TaobaoListMessages,
		"TaobaoModify": p.TaobaoModify, "TaobaoQuery": p.TaobaoQuery,
		"AlibabaRefundInfo": p.AlibabaRefundInfo, "AlibabaRefundReasons": p.AlibabaRefundReasons,
		"AlibabaUploadVoucher": p.AlibabaUploadVoucher, "AlibabaCreateRefund": p.AlibabaCreateRefund,
		"AlibabaGoodsReturn": p.AlibabaGoodsReturn, "AlibabaLogisticsCompanies": p.AlibabaLogisticsCompanies,
	}
}

// Set overrides the path of the endpoint with the given name (a field name of Paths).
func (p *Paths) Set(name, value string) error {
	if value == "" || !strings.HasPrefix(value, "/") {
		return fmt.Errorf("path %s = %q: must start with /", name, value)
	}
	ptr := map[string]*string{
		"TaobaoList": &p.TaobaoList, "TaobaoRender": &p.TaobaoRender,
		"TaobaoReturnLogisticsRender": &p.TaobaoReturnLogisticsRender,
		"TaobaoReturnLogisticsSubmit": &p.TaobaoReturnLogisticsSubmit,
		"TaobaoCancel":                &p.TaobaoCancel, "TaobaoSubmitMessage": &p.TaobaoSubmitMessage,
		"TaobaoSubmit": &p.TaobaoSubmit, "TaobaoListMessages": &p.TaobaoListMessages,
		"TaobaoModify": &p.TaobaoModify, "TaobaoQuery": &p.TaobaoQuery,
		"AlibabaRefundInfo": &p.AlibabaRefundInfo, "AlibabaRefundReasons": &p.AlibabaRefundReasons,
		"AlibabaUploadVoucher": &p.AlibabaUploadVoucher, "AlibabaCreateRefund": &p.AlibabaCreateRefund,
		"AlibabaGoodsReturn": &p.AlibabaGoodsReturn, "AlibabaLogisticsCompanies": &p.AlibabaLogisticsCompanies,
	}[name]
	if ptr == nil {
		return fmt.Errorf("unknown endpoint %q", name)
	}
	*ptr = value
	return nil
}

// PathEnvVar returns the environment variable that overrides an endpoint's
// path: UPSTREAM_PATH_ followed by the name in upper snake case, e.g.
// TaobaoReturnLogisticsSubmit -> UPSTREAM_PATH_TAOBAO_RETURN_LOGISTICS_SUBMIT.
func PathEnvVar(name string) string {
	var b strings.Builder
	b.WriteString("UPSTREAM_PATH_")
	for i, r := range name {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

// PathsFromLookup returns DefaultPaths with every endpoint overridden whose
// PathEnvVar is set in lookup (typically a command's getenv).
func PathsFromLookup(lookup func(string) string) (Paths, error) {
	p := DefaultPaths()
	for name := range p.byName() {
		if v := lookup(PathEnvVar(name)); v != "" {
			if err := p.Set(name, v); err != nil {
				return Paths{}, fmt.Errorf("%s: %w", PathEnvVar(name), err)
			}
		}
	}
	return p, nil
}

// legacySign is the default profile's signature (transitional, see above).
func legacySign(accessKey, timestamp, nonce, secret string) string {
	sum := md5.Sum([]byte(accessKey + timestamp + nonce + secret))
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}
