// Package platform owns what the product takes to be true about the Xportcn /
// PandaPon OpenAPI where the documentation leaves it UNKNOWN or INFERRED: the
// platform profile. The client, the worker's decisions, the receiver's type
// table and the sandbox all read one Profile, so a wrong guess is corrected in
// one file (UPSTREAM_PROFILE) instead of in code, and `refundctl doctor` can
// check every guess it names against a real account.
//
// The product's own vocabulary (refund phases, error classes, endpoint names,
// message kinds) is defined here as Go constants; the platform's wire values
// for them live only in the profile.
package platform

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/BurntSushi/toml"
)

//go:embed default_profile.toml
var defaultProfile []byte

// DefaultProfileTOML returns the built-in profile's text, for `doctor` and
// the docs.
func DefaultProfileTOML() []byte { return bytes.Clone(defaultProfile) }

// Profile is the validated set of platform facts. Obtain one from Default,
// Load or Parse; its lookup methods assume it passed Validate.
type Profile struct {
	Envelope   EnvelopeFacts             `toml:"envelope"`
	Signature  SignatureFacts            `toml:"signature"`
	ErrorCodes ErrorCodes                `toml:"error_codes"`
	Endpoints  map[Endpoint]EndpointFact `toml:"endpoints"`
	Times      TimeFacts                 `toml:"times"`
	Amounts    AmountFacts               `toml:"amounts"`
	Taobao     TaobaoFacts               `toml:"taobao"`
	Alibaba    AlibabaFacts              `toml:"alibaba"`
	Callbacks  CallbackFacts             `toml:"callbacks"`

	// Derived by Validate for fast lookups.
	codeClass   map[int]ErrorClass
	tbByName    map[string]Phase
	tbByCode    map[int]Phase
	abByName    map[string]Phase
	zone        *time.Location
	window      time.Duration
	typeKinds   [2]map[string]Kind
	knownFields [2]map[Kind]map[string]bool
}

// EnvelopeFacts are the response envelope's success markers.
type EnvelopeFacts struct {
	SuccessCode     int    `toml:"success_code"`
	SuccessMsg      string `toml:"success_msg"`
	ErrorHTTPStatus int    `toml:"error_http_status"`
}

// SignatureFacts describe how a request is signed: the concatenation of
// Parts, hashed, hex encoded in LetterCase.
type SignatureFacts struct {
	Parts         []string `toml:"parts"`
	Hash          string   `toml:"hash"`
	LetterCase    string   `toml:"letter_case"`
	TimestampUnit string   `toml:"timestamp_unit"`
	Window        string   `toml:"window"`
	NonceLength   int      `toml:"nonce_length"`
}

// Signature parts.
const (
	PartAccessKey = "access-key"
	PartTimestamp = "timestamp"
	PartNonce     = "nonce-str"
	PartSecret    = "secret"
)

// EndpointFact is where an endpoint lives and how it is called.
type EndpointFact struct {
	Path     string `toml:"path"`
	Method   string `toml:"method"`
	Family   string `toml:"family"`
	Evidence string `toml:"evidence"`
}

// TimeFacts say how platform times are written.
type TimeFacts struct {
	Layouts   []string `toml:"layouts"`
	UTCOffset string   `toml:"utc_offset"`
}

// AmountFacts give each platform's amount unit.
type AmountFacts struct {
	Taobao  string `toml:"taobao"`
	Alibaba string `toml:"alibaba"`
}

// Amount units.
const (
	UnitFen  = "fen"
	UnitYuan = "yuan"
)

// StatusFact is the wire form of one refund phase: the names the platform
// may send (the first is canonical) and, for Taobao, its numeric code.
type StatusFact struct {
	Names []string `toml:"names"`
	Code  *int     `toml:"code"`
}

// TaobaoFacts are Taobao's enums and list paging.
type TaobaoFacts struct {
	RefundStatus map[Phase]StatusFact `toml:"refund_status"`
	RefundType   TaobaoRefundTypes    `toml:"refund_type"`
	GoodsStatus  TaobaoGoodsStatuses  `toml:"goods_status"`
	List         ListFacts            `toml:"list"`
}

// TaobaoRefundTypes are the refundType integers.
type TaobaoRefundTypes struct {
	RefundOnly      int `toml:"refund_only"`
	ReturnAndRefund int `toml:"return_and_refund"`
}

// TaobaoGoodsStatuses are the goodsStatus integers.
type TaobaoGoodsStatuses struct {
	NotShipped  int `toml:"not_shipped"`
	NotReceived int `toml:"not_received"`
	Received    int `toml:"received"`
}

// ListFacts name the Taobao list's request and response fields and its paging.
type ListFacts struct {
	OrderFilterField string `toml:"order_filter_field"`
	PageNoField      string `toml:"page_no_field"`
	PageSizeField    string `toml:"page_size_field"`
	FirstPage        int    `toml:"first_page"`
	ItemsField       string `toml:"items_field"`
	TotalField       string `toml:"total_field"`
	MaxPageSize      int    `toml:"max_page_size"`
}

// AlibabaFacts are 1688's enums.
type AlibabaFacts struct {
	RefundStatus   map[Phase]StatusFact `toml:"refund_status"`
	GoodsStatus    AlibabaGoodsStatuses `toml:"goods_status"`
	DisputeRequest AlibabaDisputes      `toml:"dispute_request"`
}

// AlibabaGoodsStatuses are the create and reason-lookup goodsStatus strings.
type AlibabaGoodsStatuses struct {
	InSaleWaitSellerSend   string `toml:"in_sale_wait_seller_send"`
	InSaleWaitBuyerReceive string `toml:"in_sale_wait_buyer_receive"`
	InSaleBuyerReceived    string `toml:"in_sale_buyer_received"`
	AfterSaleNotReceived   string `toml:"after_sale_not_received"`
	AfterSaleReceived      string `toml:"after_sale_received"`
}

// All returns the goods statuses in lifecycle order.
func (g AlibabaGoodsStatuses) All() []string {
	return []string{g.InSaleWaitSellerSend, g.InSaleWaitBuyerReceive, g.InSaleBuyerReceived,
		g.AfterSaleNotReceived, g.AfterSaleReceived}
}

// Received reports whether goodsStatus says the buyer has the goods (the
// only case in which 1688 allows a return).
func (g AlibabaGoodsStatuses) Received(goodsStatus string) bool {
	return goodsStatus == g.InSaleBuyerReceived || goodsStatus == g.AfterSaleReceived
}

// AlibabaDisputes are the create disputeRequest strings.
type AlibabaDisputes struct {
	Refund       string `toml:"refund"`
	ReturnRefund string `toml:"return_refund"`
}

// CallbackFacts describe each platform's pushes.
type CallbackFacts struct {
	Taobao  PlatformCallbacks `toml:"taobao"`
	Alibaba PlatformCallbacks `toml:"alibaba"`
}

// PlatformCallbacks are one platform's message types (wire name → kind)
// and the body fields each kind carries.
type PlatformCallbacks struct {
	Types  map[string]Kind   `toml:"types"`
	Fields map[Kind][]string `toml:"fields"`
	// EndedOrderStatuses are the orderStatus values of an order message
	// that mean the order is over (cancelled or closed): a refund not yet
	// submitted for it ends there, with nothing sent.
	EndedOrderStatuses []string `toml:"ended_order_statuses"`
}

// Default returns the built-in profile. It cannot fail: a test pins that the
// embedded file validates.
//
// The profile is parsed once and shared: callers must not modify it.
func Default() *Profile { return builtIn() }

// builtIn panics only if the embedded file is broken, which
// TestDefaultProfileIsValid catches before any build ships; a panic, like
// template.Must's, because no caller could do anything useful with the error.
var builtIn = sync.OnceValue(func() *Profile {
	p, err := Parse(nil, "")
	if err != nil {
		panic("platform: the embedded default profile is invalid: " + err.Error())
	}
	return p
})

// Load returns the default profile overridden by the file at path (none when
// path is empty). Errors are one line naming the file and the key.
func Load(path string) (*Profile, error) {
	if path == "" {
		return Parse(nil, "")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("platform profile: %w", err)
	}
	return Parse(b, path)
}

// Parse returns the default profile overridden by override (TOML; nil for
// none). name labels errors (a file name).
//
// The override is merged into the default as a tree: tables merge key by key,
// so naming one endpoint's path keeps its method; a list, and a status entry
// under refund_status, replace the default whole, so a status cannot end up
// with names from two files. The merged tree is then decoded strictly.
func Parse(override []byte, name string) (*Profile, error) {
	label := "(built-in)"
	if name != "" {
		label = name
	}
	var base map[string]any
	if _, err := toml.Decode(string(defaultProfile), &base); err != nil {
		return nil, fmt.Errorf("platform profile (built-in): %w", tomlErr(err))
	}
	if len(override) > 0 {
		var over map[string]any
		if _, err := toml.Decode(string(override), &over); err != nil {
			return nil, fmt.Errorf("platform profile %s: %w", label, tomlErr(err))
		}
		if err := mergeTree(base, over, ""); err != nil {
			return nil, fmt.Errorf("platform profile %s: %w", label, err)
		}
	}
	var merged bytes.Buffer
	if err := toml.NewEncoder(&merged).Encode(base); err != nil {
		return nil, fmt.Errorf("platform profile %s: %w", label, tomlErr(err))
	}
	var p Profile
	if err := decodeStrict(merged.Bytes(), &p); err != nil {
		return nil, fmt.Errorf("platform profile %s: %w", label, err)
	}
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("platform profile %s: %w", label, err)
	}
	return &p, nil
}

// mergeTree merges src into dst (see Parse for the rules). Keys are exact:
// the decoder would match "Taobao" to taobao, and the two would then fight.
func mergeTree(dst, src map[string]any, path string) error {
	for k, v := range src {
		key := path + k
		if _, ok := dst[k]; !ok {
			for have := range dst {
				if strings.EqualFold(have, k) {
					return fmt.Errorf("unknown key %s (did you mean %s%s?)", key, path, have)
				}
			}
		}
		sub, isTable := v.(map[string]any)
		old, oldIsTable := dst[k].(map[string]any)
		if isTable && oldIsTable && !replacedWhole(path) {
			if err := mergeTree(old, sub, key+"."); err != nil {
				return err
			}
			continue
		}
		dst[k] = v
	}
	return nil
}

// replacedWhole reports whether entries of the table at path are replaced
// rather than merged.
func replacedWhole(path string) bool {
	return path == "taobao.refund_status." || path == "alibaba.refund_status."
}

// decodeStrict decodes b into p; a key p has no place for is an error naming it.
func decodeStrict(b []byte, p *Profile) error {
	md, err := toml.NewDecoder(bytes.NewReader(b)).Decode(p)
	if err != nil {
		return tomlErr(err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, 0, len(und))
		for _, k := range und {
			keys = append(keys, k.String())
		}
		return fmt.Errorf("unknown key %s", strings.Join(keys, ", "))
	}
	return nil
}

// tomlErr makes a decoding error one line, with the line number when the
// parser knows it.
func tomlErr(err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("line %d: %s", pe.Position.Line, oneLine(pe.Message))
	}
	return errors.New(oneLine(err.Error()))
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
