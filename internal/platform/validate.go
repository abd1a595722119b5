package platform

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// validate checks every fact and builds the lookup tables. The first problem
// is returned, naming its key, so the message fits one line.
func (p *Profile) validate() error {
	checks := []func() error{p.validateEnvelope, p.validateSignature, p.validateErrorCodes,
		p.validateEndpoints, p.validateTimes, p.validateAmounts, p.validateTaobao, p.validateAlibaba,
		p.validateCallbacks}
	for _, check := range checks {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func keyErr(key, format string, args ...any) error {
	return fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...))
}

func (p *Profile) validateEnvelope() error {
	if p.Envelope.SuccessCode == 0 {
		return keyErr("envelope.success_code", "missing")
	}
	if s := p.Envelope.ErrorHTTPStatus; s < 100 || s > 599 {
		return keyErr("envelope.error_http_status", "%d is not an HTTP status", s)
	}
	return nil
}

func (p *Profile) validateSignature() error {
	s := p.Signature
	if len(s.Parts) == 0 {
		return keyErr("signature.parts", "missing")
	}
	seen := map[string]bool{}
	for _, part := range s.Parts {
		if !slices.Contains([]string{PartAccessKey, PartTimestamp, PartNonce, PartSecret}, part) {
			return keyErr("signature.parts", "%q is not one of access-key, timestamp, nonce-str, secret", part)
		}
		if seen[part] {
			return keyErr("signature.parts", "%q listed twice", part)
		}
		seen[part] = true
	}
	if !seen[PartSecret] {
		return keyErr("signature.parts", "must include secret")
	}
	if s.Hash != "md5" {
		return keyErr("signature.hash", "%q: only md5 is supported", s.Hash)
	}
	if s.LetterCase != "upper" && s.LetterCase != "lower" {
		return keyErr("signature.letter_case", "%q: want upper or lower", s.LetterCase)
	}
	if s.TimestampUnit != "ms" && s.TimestampUnit != "s" {
		return keyErr("signature.timestamp_unit", "%q: want ms or s", s.TimestampUnit)
	}
	d, err := time.ParseDuration(s.Window)
	if err != nil || d <= 0 {
		return keyErr("signature.window", "%q: want a positive duration such as 600s", s.Window)
	}
	p.window = d
	if s.NonceLength < 0 || s.NonceLength > 128 {
		return keyErr("signature.nonce_length", "%d: want 0..128", s.NonceLength)
	}
	return nil
}

func (p *Profile) validateErrorCodes() error {
	p.codeClass = map[int]ErrorClass{}
	for _, c := range p.ErrorCodes.classes() {
		key := "error_codes." + string(c.Class)
		if len(c.Codes) == 0 {
			return keyErr(key, "missing (list at least one code)")
		}
		for _, code := range c.Codes {
			if code == p.Envelope.SuccessCode {
				return keyErr(key, "%d is the success code", code)
			}
			if other, dup := p.codeClass[code]; dup {
				return keyErr(key, "code %d is already in error_codes.%s", code, other)
			}
			p.codeClass[code] = c.Class
		}
	}
	for _, list := range []struct {
		key     string
		classes []ErrorClass
	}{{"error_codes.retryable", p.ErrorCodes.Retryable}, {"error_codes.not_applied", p.ErrorCodes.NotApplied}} {
		seen := map[ErrorClass]bool{}
		for _, c := range list.classes {
			if !p.knownClass(c) {
				return keyErr(list.key, "%q is not an error class", c)
			}
			if seen[c] {
				return keyErr(list.key, "%q listed twice", c)
			}
			seen[c] = true
		}
	}
	return nil
}

func (p *Profile) knownClass(c ErrorClass) bool {
	for _, k := range p.ErrorCodes.classes() {
		if k.Class == c {
			return true
		}
	}
	return false
}

func (p *Profile) validateEndpoints() error {
	for name := range p.Endpoints {
		if !slices.Contains(AllEndpoints(), name) {
			return keyErr("endpoints."+string(name), "unknown endpoint")
		}
	}
	paths := map[string]Endpoint{}
	for _, name := range AllEndpoints() {
		key := "endpoints." + string(name)
		e, ok := p.Endpoints[name]
		if !ok {
			return keyErr(key, "missing")
		}
		if !strings.HasPrefix(e.Path, "/") || strings.ContainsAny(e.Path, " ?#") {
			return keyErr(key+".path", "%q: want an absolute path without query", e.Path)
		}
		if strings.Contains(e.Path, "{") && !strings.Contains(e.Path, "{refundId}") {
			return keyErr(key+".path", "%q: the only placeholder is {refundId}", e.Path)
		}
		if other, dup := paths[e.Method+" "+e.Path]; dup {
			return keyErr(key+".path", "%s %s is also endpoints.%s", e.Method, e.Path, other)
		}
		paths[e.Method+" "+e.Path] = name
		switch e.Method {
		case http.MethodPost:
		case http.MethodGet:
			if !name.idOnly() {
				return keyErr(key+".method", "GET is not supported: this endpoint sends a JSON body")
			}
		default:
			return keyErr(key+".method", "%q: want GET or POST", e.Method)
		}
		if name == AlibabaUploadVoucher && e.Method != http.MethodPost {
			return keyErr(key+".method", "the upload is a multipart POST")
		}
		if !slices.Contains([]string{"open", "v2", "alibaba"}, e.Family) {
			return keyErr(key+".family", "%q: want open, v2 or alibaba", e.Family)
		}
		if !slices.Contains(evidenceTags, e.Evidence) {
			return keyErr(key+".evidence", "%q: want one of %s", e.Evidence, strings.Join(evidenceTags, ", "))
		}
	}
	return nil
}

// idOnly reports whether the endpoint's only argument is a refund id (or
// nothing), so it can travel in a GET's path or query.
func (e Endpoint) idOnly() bool {
	switch e {
	case TaobaoReturnLogisticsRender, TaobaoCancel, TaobaoQuery, AlibabaRefundInfo, AlibabaLogisticsCompanies:
		return true
	}
	return false
}

func (p *Profile) validateTimes() error {
	if len(p.Times.Layouts) == 0 {
		return keyErr("times.layouts", "missing")
	}
	ref := time.Date(2026, 5, 20, 15, 40, 7, 0, time.UTC)
	for _, l := range p.Times.Layouts {
		back, err := time.Parse(l, ref.Format(l))
		if err != nil || back.Year() != 2026 || back.Day() != 20 || back.Minute() != 40 {
			return keyErr("times.layouts", "%q is not a Go time layout with date and time (e.g. 2006-01-02 15:04:05)", l)
		}
	}
	zone, err := parseOffset(p.Times.UTCOffset)
	if err != nil {
		return keyErr("times.utc_offset", "%v", err)
	}
	p.zone = zone
	return nil
}

// parseOffset reads "+08:00" as a fixed zone. A fixed offset rather than an
// IANA name because China has no daylight saving and a fixed zone needs no
// tzdata on the host.
func parseOffset(s string) (*time.Location, error) {
	if len(s) != 6 || (s[0] != '+' && s[0] != '-') || s[3] != ':' {
		return nil, fmt.Errorf("%q: want ±hh:mm", s)
	}
	h, err1 := strconv.Atoi(s[1:3])
	m, err2 := strconv.Atoi(s[4:6])
	if err1 != nil || err2 != nil || h > 14 || m > 59 {
		return nil, fmt.Errorf("%q: want ±hh:mm", s)
	}
	off := h*3600 + m*60
	if s[0] == '-' {
		off = -off
	}
	return time.FixedZone("UTC"+s, off), nil
}

func (p *Profile) validateAmounts() error {
	for key, v := range map[string]string{"amounts.taobao": p.Amounts.Taobao, "amounts.alibaba": p.Amounts.Alibaba} {
		if v != UnitFen && v != UnitYuan {
			return keyErr(key, "%q: want fen or yuan", v)
		}
	}
	return nil
}

func (p *Profile) validateTaobao() error {
	var err error
	if p.tbByName, p.tbByCode, err = statusTables("taobao.refund_status", p.Taobao.RefundStatus, true, true); err != nil {
		return err
	}
	rt := p.Taobao.RefundType
	if rt.RefundOnly == rt.ReturnAndRefund {
		return keyErr("taobao.refund_type", "refund_only and return_and_refund are both %d", rt.RefundOnly)
	}
	g := p.Taobao.GoodsStatus
	if g.NotShipped == g.NotReceived || g.NotShipped == g.Received || g.NotReceived == g.Received {
		return keyErr("taobao.goods_status", "not_shipped, not_received and received must differ")
	}
	l := p.Taobao.List
	for key, v := range map[string]string{"order_filter_field": l.OrderFilterField, "page_no_field": l.PageNoField,
		"page_size_field": l.PageSizeField, "items_field": l.ItemsField, "total_field": l.TotalField} {
		if v == "" {
			return keyErr("taobao.list."+key, "missing")
		}
	}
	if l.FirstPage != 0 && l.FirstPage != 1 {
		return keyErr("taobao.list.first_page", "%d: want 0 or 1", l.FirstPage)
	}
	if l.MaxPageSize < 1 || l.MaxPageSize > 1000 {
		return keyErr("taobao.list.max_page_size", "%d: want 1..1000", l.MaxPageSize)
	}
	return nil
}

func (p *Profile) validateAlibaba() error {
	var err error
	if p.abByName, _, err = statusTables("alibaba.refund_status", p.Alibaba.RefundStatus, false, false); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, g := range p.Alibaba.GoodsStatus.All() {
		if g == "" {
			return keyErr("alibaba.goods_status", "every goods status must be named")
		}
		if seen[g] {
			return keyErr("alibaba.goods_status", "%q listed twice", g)
		}
		seen[g] = true
	}
	d := p.Alibaba.DisputeRequest
	if d.Refund == "" || d.ReturnRefund == "" || d.Refund == d.ReturnRefund {
		return keyErr("alibaba.dispute_request", "refund and return_refund must be named and differ")
	}
	return nil
}

// statusTables checks that every phase is mapped, that no name (and, with
// codes, no code) is used twice, and returns the reverse tables. With fold
// the names are matched without regard to case (Taobao statuses have been
// seen in lower case), and are keyed upper case.
func statusTables(key string, m map[Phase]StatusFact, codes, fold bool) (map[string]Phase, map[int]Phase, error) {
	for ph := range m {
		if !slices.Contains(Phases(), ph) {
			return nil, nil, keyErr(key+"."+string(ph), "unknown phase (want one of %s)", phaseList())
		}
	}
	byName, byCode := map[string]Phase{}, map[int]Phase{}
	for _, ph := range Phases() {
		k := key + "." + string(ph)
		f, ok := m[ph]
		if !ok {
			return nil, nil, keyErr(k, "missing")
		}
		if len(f.Names) == 0 {
			return nil, nil, keyErr(k+".names", "missing")
		}
		for _, n := range f.Names {
			if n == "" || strings.TrimSpace(n) != n {
				return nil, nil, keyErr(k+".names", "%q: a name is not empty and has no surrounding space", n)
			}
			nk := n
			if fold {
				nk = strings.ToUpper(n)
			}
			if other, dup := byName[nk]; dup {
				return nil, nil, keyErr(k+".names", "duplicate status %q (also %s.%s)", n, key, other)
			}
			byName[nk] = ph
		}
		switch {
		case codes && f.Code == nil:
			return nil, nil, keyErr(k+".code", "missing")
		case !codes && f.Code != nil:
			return nil, nil, keyErr(k+".code", "this platform's statuses have no numeric codes")
		case codes:
			if other, dup := byCode[*f.Code]; dup {
				return nil, nil, keyErr(k+".code", "duplicate status code %d (also %s.%s)", *f.Code, key, other)
			}
			byCode[*f.Code] = ph
		}
	}
	return byName, byCode, nil
}

func phaseList() string {
	var s []string
	for _, p := range Phases() {
		s = append(s, string(p))
	}
	return strings.Join(s, ", ")
}

func (p *Profile) validateCallbacks() error {
	cbs := []struct {
		key string
		c   *PlatformCallbacks
	}{{"callbacks.taobao", &p.Callbacks.Taobao}, {"callbacks.alibaba", &p.Callbacks.Alibaba}}
	for i, cb := range cbs {

		p.typeKinds[i] = map[string]Kind{}
		for name, kind := range cb.c.Types {
			if kind == "" { // an override removes a built-in name this way
				delete(cb.c.Types, name)
				continue
			}
			if !slices.Contains(Kinds(), kind) {
				return keyErr(cb.key+".types."+name, "%q is not a kind (order_status, price_modify, refund)", kind)
			}
			if !ValidMessageType(name) {
				return keyErr(cb.key+".types", "%q: want 1-%d letters, digits, '_' or '-'", name, MaxMessageTypeLen)
			}
			p.typeKinds[i][name] = kind
		}
		if len(cb.c.Types) == 0 {
			return keyErr(cb.key+".types", "no message type left: the platform's pushes would all be parked")
		}
		p.knownFields[i] = map[Kind]map[string]bool{}
		for kind, fields := range cb.c.Fields {
			if !slices.Contains(Kinds(), kind) {
				return keyErr(cb.key+".fields."+string(kind), "not a kind (order_status, price_modify, refund)")
			}
			set := map[string]bool{}
			for _, f := range fields {
				set[f] = true
			}
			p.knownFields[i][kind] = set
		}
		if len(p.knownFields[i][KindRefund]) == 0 {
			return keyErr(cb.key+".fields.refund", "missing")
		}
		seen := map[string]bool{}
		for _, st := range cb.c.EndedOrderStatuses {
			if st == "" || strings.TrimSpace(st) != st || len(st) > 64 {
				return keyErr(cb.key+".ended_order_statuses", "%q: want a status as the platform writes it (1-64 characters, no surrounding space)", st)
			}
			if seen[st] {
				return keyErr(cb.key+".ended_order_statuses", "%q listed twice", st)
			}
			seen[st] = true
		}
	}
	return nil
}

// MaxMessageTypeLen bounds a messageType: no real type comes near it, and the
// name becomes a subject token.
const MaxMessageTypeLen = 128

// ValidMessageType reports whether s can be a message type: 1 to
// MaxMessageTypeLen ASCII letters, digits, '_' or '-', so that it is a safe
// NATS subject token.
func ValidMessageType(s string) bool {
	if s == "" || len(s) > MaxMessageTypeLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
