package doctor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/excerpt"
	"github.com/refundhub/refundhub/internal/platform"
)

// inspect reads an answer that carries data: the envelope's success
// markers, whether the client's type holds the data, and every guess the
// data shows (statuses, times, amounts, list fields, unknown fields).
func (r *run) inspect(e platform.Endpoint, res apiclient.ProbeResult, out outcome) {
	env := res.Envelope
	switch out {
	case outSuccess, outUndecodable:
		r.confirm("envelope.success_code", strconv.Itoa(env.Code))
		if env.Msg == r.prof.Envelope.SuccessMsg {
			r.confirm("envelope.success_msg", strconv.Quote(env.Msg))
		} else {
			r.contradict("envelope.success_msg", strconv.Quote(env.Msg))
			r.change("envelope.success_msg", env.Msg, fmt.Sprintf("successful answers say %q", env.Msg))
		}
	case outLooksSuccess:
		r.contradict("envelope.success_code", fmt.Sprintf("%s answered code %d %q with data, a code no class lists", e, env.Code, excerpt.Of(env.Msg, 40)))
		r.decide("envelope.success_code", fmt.Sprintf("%s answered code %d %q with data: if that is success, set it (every call fails until it is)", e, env.Code, excerpt.Of(env.Msg, 40)),
			fmt.Sprintf("envelope.success_code = %d", env.Code))
	default:
		return
	}
	var de *apiclient.DecodeError
	switch {
	case res.Err == nil:
		r.confirm(decodeKey(e), "decoded")
	case errors.As(res.Err, &de):
		r.contradict(decodeKey(e), excerpt.Of(de.Err.Error(), 160))
		if !strings.Contains(de.Err.Error(), "fraction") { // a fraction is the amount unit's, which the patch sets
			r.decide(decodeKey(e), fmt.Sprintf("the client's %s cannot hold %s's answer (%s): this needs a code change, not a profile change",
				apiclient.ResponseType(e), e, excerpt.Of(de.Err.Error(), 160)), "")
		}
	}
	v := &visitor{r: r, e: e, taobao: strings.HasPrefix(string(e), "taobao_")}
	data := env.Data
	switch e {
	case platform.TaobaoList:
		r.inspectList(v, data)
	case platform.AlibabaLogisticsCompanies:
		elem := apiclient.ResponseType(e).Elem()
		for _, list := range listsIn(data) {
			for _, item := range list {
				v.walk(item, elem, "[]")
			}
		}
	default:
		v.walk(data, apiclient.ResponseType(e), "")
	}
	switch e {
	case platform.TaobaoQuery, platform.TaobaoReturnLogisticsRender:
		r.taobaoStatus(e, field(data, "refundOrderAggregate", "refundOrder"))
	case platform.TaobaoRender:
		r.taobaoStatus(e, field(data, "refundOrderTemplate", "refundOrder"))
		r.renderLists(field(data, "refundOrderTemplate"))
	case platform.AlibabaRefundInfo:
		if raw, ok := scalar(field(data, "status")); ok {
			id, _ := scalar(field(data, "refundId"))
			r.statuses = append(r.statuses, seenStatus{refundID: id, raw: raw, endpoint: e})
		}
	}
}

// wireTypes checks the JSON types of the envelope's code and developId.
func (r *run) wireTypes(body []byte) {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return
	}
	if _, ok := top["code"]; !ok {
		return // not an envelope
	}
	switch t := jsonType(top["code"]); t {
	case "number":
		r.confirm("wire.code", "number")
	case "string":
		if s, _ := scalar(top["code"]); isDigits(strings.TrimPrefix(s, "-")) {
			r.confirm("wire.code", "numeric string (read as a number)")
		} else {
			r.contradict("wire.code", "string "+excerpt.Of(string(top["code"]), 20))
		}
	default:
		r.contradict("wire.code", t)
	}
	switch t := jsonType(top["developId"]); t {
	case "string", "number":
		r.confirm("wire.developId", t)
	case "absent", "null":
		r.confirm("wire.developId", t+" (the client does not need it)")
	default:
		r.contradict("wire.developId", t)
		r.decide("wire.developId", "developId is a JSON "+t+": the client reads strings and numbers only (a code change)", "")
	}
}

// jsonType names the JSON type of a value ("absent" for none).
func jsonType(raw json.RawMessage) string {
	b := bytes.TrimSpace(raw)
	switch {
	case len(b) == 0:
		return "absent"
	case b[0] == '"':
		return "string"
	case b[0] == '{':
		return "object"
	case b[0] == '[':
		return "array"
	case bytes.Equal(b, []byte("null")):
		return "null"
	case bytes.Equal(b, []byte("true")), bytes.Equal(b, []byte("false")):
		return "boolean"
	}
	return "number"
}

// visitor walks a JSON value along the Go type the client decodes it into.
type visitor struct {
	r      *run
	e      platform.Endpoint
	taobao bool
}

// timeFields are the fields the product reads as platform times (with the
// profile's layouts) when the client's type holds them as text: Taobao's
// timeoutDate, 1688's gmt* and audit times. Taobao's createTime is a number.
var timeFields = map[string]bool{"timeoutDate": true, "gmtApply": true, "gmtCompleted": true, "gmtCreate": true,
	"gmtFreezed": true, "gmtModified": true, "gmtTimeOut": true, "createTime": true, "updateTime": true}

var (
	amountType     = reflect.TypeFor[apiclient.Amount]()
	rawMessageType = reflect.TypeFor[json.RawMessage]()
	unmarshalType  = reflect.TypeFor[json.Unmarshaler]()
)

// walk visits raw as decoded into t: keys t does not know are unknown
// fields, text time fields are parsed, Amount fields are checked for a unit.
func (v *visitor) walk(raw json.RawMessage, t reflect.Type, path string) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == amountType:
		v.r.checkAmount(v.e, path, raw, v.taobao)
		return
	case t == rawMessageType:
		return // kept as it came: any shape is fine
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil {
			return
		}
		for _, item := range items {
			v.walk(item, t.Elem(), path+"[]")
		}
	case reflect.Struct:
		var obj map[string]json.RawMessage
		if json.Unmarshal(raw, &obj) != nil {
			return
		}
		fields := jsonFields(t)
		custom := reflect.PointerTo(t).Implements(unmarshalType)
		for _, key := range sortedKeys(obj) {
			p := joinPath(path, key)
			ft, ok := fields[key]
			if !ok {
				if !(custom && decoderReads(t, key, obj[key])) {
					v.r.unknownField(v.e, p, obj[key])
				}
				continue
			}
			if timeFields[key] && ft.Kind() == reflect.String {
				if s, ok := scalar(obj[key]); ok && jsonType(obj[key]) == "string" {
					v.r.checkTime(v.e, p, s)
				} else if jsonType(obj[key]) == "number" {
					v.r.checkTime(v.e, p, string(obj[key]))
				}
			}
			v.walk(obj[key], ft, p)
		}
	}
}

// jsonFields maps a struct's JSON names to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name := f.Name
		if tag, ok := f.Tag.Lookup("json"); ok {
			n, _, _ := strings.Cut(tag, ",")
			if n == "-" {
				continue
			}
			if n != "" {
				name = n
			}
		}
		out[name] = f.Type
	}
	return out
}

// decoderReads reports whether a type with its own UnmarshalJSON reads key
// (LogisticsCompany reads the documented misspelling logisticCompanyCode,
// for one): an object holding only that key, with the value seen or a
// stand-in when that is empty, decodes to something other than the zero
// value.
func decoderReads(t reflect.Type, key string, val json.RawMessage) bool {
	zero := reflect.New(t).Elem().Interface()
	for _, sample := range []json.RawMessage{val, json.RawMessage(`"1"`), json.RawMessage(`1`)} {
		doc, err := json.Marshal(map[string]json.RawMessage{key: sample})
		if err != nil {
			continue
		}
		p := reflect.New(t)
		if json.Unmarshal(doc, p.Interface()) != nil {
			continue
		}
		if !reflect.DeepEqual(p.Elem().Interface(), zero) {
			return true
		}
	}
	return false
}

// unknownField records a field the client's types do not know, once per
// endpoint and path.
func (r *run) unknownField(e platform.Endpoint, path string, raw json.RawMessage) {
	for _, u := range r.rep.UnknownFields {
		if u.Endpoint == string(e) && u.Field == path {
			return
		}
	}
	r.rep.UnknownFields = append(r.rep.UnknownFields, UnknownField{Endpoint: string(e), Field: path, Example: excerpt.Of(string(bytes.TrimSpace(raw)), 60)})
}

// layoutCandidates are the time layouts doctor tries on a time the
// profile's layouts cannot read.
var layoutCandidates = []string{
	"2006-01-02 15:04:05", "2006-01-02T15:04:05Z07:00", "2006-01-02T15:04:05.999999999Z07:00", "2006-01-02T15:04:05",
	"2006-01-02 15:04:05.000", "2006-01-02T15:04:05.000", "2006/01/02 15:04:05", "2006-01-02 15:04:05 -0700",
	"2006-01-02 15:04:05Z07:00", "20060102150405", "2006-01-02 15:04", "Jan 2, 2006 3:04:05 PM",
	time.RFC1123Z, time.RFC1123,
}

// checkTime parses a platform time with the profile's layouts.
func (r *run) checkTime(e platform.Endpoint, path, value string) {
	value = strings.TrimSpace(value)
	if value == "" {
		return
	}
	name := path[strings.LastIndexByte(path, '.')+1:]
	if _, err := r.prof.ParseTime(value); err == nil {
		if !r.times[name] {
			r.times[name] = true
			r.confirm("times.layouts", fmt.Sprintf("%s %q", name, value))
		}
		return
	}
	r.contradict("times.layouts", fmt.Sprintf("%s %q (%s)", path, value, e))
	if isDigits(value) {
		r.decide("times.layouts", fmt.Sprintf("%s carries %s, a number rather than a date: no layout reads it (a code change)", path, value), "")
		return
	}
	for _, l := range layoutCandidates {
		if _, err := time.Parse(l, value); err != nil {
			continue
		}
		layouts := []string{l}
		for _, ch := range r.rep.Changes {
			if ch.Key == "times.layouts" {
				layouts = append(layouts, ch.Value.([]string)...)
			}
		}
		for _, old := range r.prof.Times.Layouts {
			if !slices.Contains(layouts, old) {
				layouts = append(layouts, old)
			}
		}
		layouts = slices.Compact(layouts)
		r.change("times.layouts", layouts, fmt.Sprintf("%s %q is written as %q", name, value, l))
		return
	}
	r.decide("times.layouts", fmt.Sprintf("%s %q matches no layout doctor knows: add a Go layout that reads it (https://pkg.go.dev/time#pkg-constants)", path, value),
		fmt.Sprintf("times.layouts = [\"<a layout for %s>\", %s]", value, quoteAll(r.prof.Times.Layouts)))
}

// amountTally counts a platform's amounts.
type amountTally struct{ whole, decimal int }

// checkAmount looks for a fraction of the unit: fen are whole, yuan have at
// most two decimals.
func (r *run) checkAmount(e platform.Endpoint, path string, raw json.RawMessage, taobao bool) {
	s, ok := scalar(raw)
	if !ok || s == "" {
		return
	}
	n, ok := new(big.Rat).SetString(s)
	if !ok {
		return // the decode check reports it
	}
	key, plat := "amounts.alibaba", "1688"
	if taobao {
		key, plat = "amounts.taobao", "Taobao"
	}
	t := r.amounts[key]
	if t == nil {
		t = &amountTally{}
		r.amounts[key] = t
	}
	// A fen platform writes integers; two decimal places are how yuan look
	// even when whole ("100.00"), and read as fen they would be off by 100.
	decimals := 0
	if i := strings.IndexByte(s, '.'); i >= 0 && !strings.ContainsAny(s, "eE") {
		decimals = len(s) - i - 1
	}
	if n.IsInt() && decimals != 2 {
		t.whole++
		return
	}
	cents := new(big.Rat).Mul(n, big.NewRat(100, 1)).IsInt()
	if r.prof.AmountUnit(taobao) == platform.UnitYuan && cents {
		t.decimal++
		return
	}
	r.contradict(key, fmt.Sprintf("%s = %s (%s)", path, s, e))
	if cents {
		r.change(key, platform.UnitYuan, fmt.Sprintf("%s amounts are written as yuan (%s = %s), not whole fen", plat, path, s))
		return
	}
	r.decide(key, fmt.Sprintf("%s = %s has a fraction of a fen: neither unit the profile knows", path, s), "")
}

// resolveAmounts confirms a unit that no amount contradicted.
func (r *run) resolveAmounts() {
	for _, key := range []string{"amounts.taobao", "amounts.alibaba"} {
		t := r.amounts[key]
		if t == nil || len(r.agg(key).contradicted) > 0 {
			continue
		}
		switch {
		case t.decimal > 0:
			r.confirm(key, fmt.Sprintf("%d amounts, %d with decimals of at most two places", t.whole+t.decimal, t.decimal))
		case t.whole > 0:
			r.confirm(key, fmt.Sprintf("%d amounts, none with a fraction", t.whole))
			r.note(key, "whole amounts agree with fen, and with yuan that happen to be whole")
		}
	}
}

// inspectList checks the Taobao list's field names and reads its items.
func (r *run) inspectList(v *visitor, data json.RawMessage) {
	l := r.prof.Taobao.List
	var obj map[string]json.RawMessage
	if json.Unmarshal(data, &obj) != nil || obj == nil {
		r.contradict("taobao.list.items_field", "the data is a JSON "+jsonType(data)+", not an object")
		r.decide("taobao.list.items_field", "the list's data is not an object: the client needs a code change", "")
		return
	}
	itemsKey := l.ItemsField
	if raw, ok := obj[l.ItemsField]; ok && jsonType(raw) == "array" {
		r.confirm("taobao.list.items_field", fmt.Sprintf("%q present", l.ItemsField))
	} else {
		var arrays []string
		for _, k := range sortedKeys(obj) {
			if jsonType(obj[k]) == "array" {
				arrays = append(arrays, k)
			}
		}
		r.contradict("taobao.list.items_field", fmt.Sprintf("no %q (keys: %s)", l.ItemsField, strings.Join(sortedKeys(obj), ", ")))
		if len(arrays) == 1 {
			itemsKey = arrays[0]
			r.change("taobao.list.items_field", itemsKey, fmt.Sprintf("the list's items are under %q", itemsKey))
		} else {
			itemsKey = ""
			r.decide("taobao.list.items_field", fmt.Sprintf("the list's data has no %q and %d lists (%s): name the one holding the refunds",
				l.ItemsField, len(arrays), strings.Join(arrays, ", ")), "taobao.list.items_field = \"<key>\"")
		}
	}
	totalKey := l.TotalField
	if raw, ok := obj[l.TotalField]; ok && jsonType(raw) != "null" {
		if isNumber(raw) {
			r.confirm("taobao.list.total_field", fmt.Sprintf("%q = %s", l.TotalField, excerpt.Of(string(raw), 20)))
		} else {
			r.contradict("taobao.list.total_field", fmt.Sprintf("%q is a JSON %s", l.TotalField, jsonType(raw)))
			r.decide("taobao.list.total_field", fmt.Sprintf("the list's %q is not a number: the client needs a code change", l.TotalField), "")
		}
	} else {
		// A count that is not paging: a key naming a total or a count if
		// there is one, else the only number that is not a page or a size.
		var numbers, named []string
		for _, k := range sortedKeys(obj) {
			if k == l.PageNoField || k == l.PageSizeField || k == itemsKey || !isNumber(obj[k]) || pagingKey.MatchString(k) {
				continue
			}
			numbers = append(numbers, k)
			if lk := strings.ToLower(k); strings.Contains(lk, "total") || strings.Contains(lk, "count") {
				named = append(named, k)
			}
		}
		if len(named) == 1 {
			numbers = named
		}
		switch len(numbers) {
		case 0:
			totalKey = ""
			r.unobservable("taobao.list.total_field", fmt.Sprintf("the answer carries no total (keys: %s); the worker tolerates that: it pages until a short page",
				strings.Join(sortedKeys(obj), ", ")))
		case 1:
			totalKey = numbers[0]
			r.contradict("taobao.list.total_field", fmt.Sprintf("no %q; %q = %s", l.TotalField, totalKey, excerpt.Of(string(obj[totalKey]), 20)))
			r.change("taobao.list.total_field", totalKey, fmt.Sprintf("the list's count is %q", totalKey))
		default:
			totalKey = ""
			r.contradict("taobao.list.total_field", fmt.Sprintf("no %q; counts %s", l.TotalField, strings.Join(numbers, ", ")))
			r.decide("taobao.list.total_field", fmt.Sprintf("the list has no %q and several counts (%s): name the total", l.TotalField, strings.Join(numbers, ", ")),
				"taobao.list.total_field = \"<key>\"")
		}
	}
	// The page fields echoed back: the request's names are documented, the
	// answer's are not; the client reads them if they are there, and the
	// worker learns the page size the platform honours from full pages.
	for _, f := range []struct{ key, name string }{{"taobao.list.page_no_field", l.PageNoField}, {"taobao.list.page_size_field", l.PageSizeField}} {
		if raw, ok := obj[f.name]; ok && isNumber(raw) {
			r.confirm(f.key, fmt.Sprintf("%q = %s in the answer", f.name, excerpt.Of(string(raw), 20)))
		} else {
			r.unobservable(f.key, fmt.Sprintf("the answer does not echo %q (keys: %s); nothing depends on it", f.name, strings.Join(sortedKeys(obj), ", ")))
		}
	}
	for _, k := range sortedKeys(obj) {
		if k != itemsKey && k != totalKey && k != l.PageNoField && k != l.PageSizeField {
			r.unknownField(v.e, k, obj[k])
		}
	}
	if itemsKey == "" {
		return
	}
	var items []json.RawMessage
	if json.Unmarshal(obj[itemsKey], &items) != nil {
		return
	}
	agg := reflect.TypeFor[apiclient.RefundOrderAggregate]()
	for _, item := range items {
		v.walk(item, agg, itemsKey+"[]")
		r.taobaoStatus(v.e, field(item, "refundOrder"))
	}
}

// pagingKey matches the names a page number or size goes by, which are
// never the total.
var pagingKey = regexp.MustCompile(`(?i)^(page|pageno|pagenum|pageindex|current|currentpage|size|pagesize|limit|offset)$`)

// renderLists checks the refund types and goods statuses a rendered form
// offers against the profile's numbers.
func (r *run) renderLists(tpl json.RawMessage) {
	rt, g := r.prof.Taobao.RefundType, r.prof.Taobao.GoodsStatus
	lists := []struct {
		key, field string
		names      map[int]string
	}{
		{"taobao.refund_type", "refundTypeList", map[int]string{rt.RefundOnly: "refund_only", rt.ReturnAndRefund: "return_and_refund"}},
		{"taobao.goods_status", "goodsStatusList", map[int]string{g.NotShipped: "not_shipped", g.NotReceived: "not_received", g.Received: "received"}},
	}
	for _, l := range lists {
		var items []json.RawMessage
		if json.Unmarshal(field(tpl, l.field), &items) != nil {
			continue
		}
		for _, item := range items {
			s, ok := scalar(item)
			if !ok {
				continue
			}
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if name, known := l.names[n]; err == nil && known {
				r.confirm(l.key, fmt.Sprintf("%s %s (%s)", l.field, s, name))
				continue
			}
			r.contradict(l.key, fmt.Sprintf("%s offers %q", l.field, s))
			r.decide(l.key, fmt.Sprintf("the refund form offers %s %q, which the profile does not name: find what it means", l.field, s), "")
		}
	}
}
