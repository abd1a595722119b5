package platform

import (
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Endpoint returns where the endpoint lives and how it is called.
func (p *Profile) Endpoint(e Endpoint) EndpointFact { return p.Endpoints[e] }

// Class returns the class of a failing envelope code; ClassUnknown when the
// profile does not list it.
func (p *Profile) Class(code int) ErrorClass { return p.codeClass[code] }

// Code returns the code the sandbox answers with for a class: the class's
// first code.
func (p *Profile) Code(c ErrorClass) int {
	for _, k := range p.ErrorCodes.classes() {
		if k.Class == c {
			return k.Codes[0]
		}
	}
	return 0
}

// Retryable reports whether code is in a retryable class.
func (p *Profile) Retryable(code int) bool {
	c := p.Class(code)
	return c != ClassUnknown && containsClass(p.ErrorCodes.Retryable, c)
}

// NotApplied reports whether code proves a call had no effect.
func (p *Profile) NotApplied(code int) bool {
	c := p.Class(code)
	return c != ClassUnknown && containsClass(p.ErrorCodes.NotApplied, c)
}

func containsClass(list []ErrorClass, c ErrorClass) bool {
	for _, x := range list {
		if x == c {
			return true
		}
	}
	return false
}

// CodesOf returns every code of the given classes, for configuration that
// wants a code list.
func (p *Profile) CodesOf(classes []ErrorClass) []int {
	var out []int
	for _, k := range p.ErrorCodes.classes() {
		if containsClass(classes, k.Class) {
			out = append(out, k.Codes...)
		}
	}
	return out
}

// TaobaoPhase maps a Taobao refundStatus, a name in any case or a number as
// text, to its phase; ok is false for a status the profile does not know.
func (p *Profile) TaobaoPhase(raw string) (Phase, bool) {
	raw = strings.TrimSpace(raw)
	if ph, ok := p.tbByName[strings.ToUpper(raw)]; ok {
		return ph, true
	}
	if n, err := strconv.Atoi(raw); err == nil {
		ph, ok := p.tbByCode[n]
		return ph, ok
	}
	return "", false
}

// AlibabaPhase maps a 1688 refund status to its phase.
func (p *Profile) AlibabaPhase(raw string) (Phase, bool) {
	ph, ok := p.abByName[strings.TrimSpace(raw)]
	return ph, ok
}

// TaobaoName is the canonical wire name of a phase.
func (p *Profile) TaobaoName(ph Phase) string { return p.Taobao.RefundStatus[ph].Names[0] }

// TaobaoCode is the numeric code of a phase.
func (p *Profile) TaobaoCode(ph Phase) int { return *p.Taobao.RefundStatus[ph].Code }

// AlibabaName is the canonical 1688 wire name of a phase.
func (p *Profile) AlibabaName(ph Phase) string { return p.Alibaba.RefundStatus[ph].Names[0] }

// Zone is the platform's time zone.
func (p *Profile) Zone() *time.Location { return p.zone }

// ParseTime reads a platform time with any of the profile's layouts, in the
// platform's zone.
func (p *Profile) ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, l := range p.Times.Layouts {
		if t, err := time.ParseInLocation(l, s, p.zone); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("time %.60q does not match times.layouts", s)
}

// FormatTime writes t as the platform does (the first layout, its zone).
func (p *Profile) FormatTime(t time.Time) string { return t.In(p.zone).Format(p.Times.Layouts[0]) }

// SignatureWindow is how far a request's timestamp may be from the server's clock.
func (p *Profile) SignatureWindow() time.Duration { return p.window }

// CallbackKind returns the kind of a message type on a platform; ok is false
// for a type the profile does not know (the receiver parks those).
func (p *Profile) CallbackKind(taobao bool, messageType string) (Kind, bool) {
	k, ok := p.typeKinds[idx(taobao)][messageType]
	return k, ok
}

// OrderEnded reports whether an order message's orderStatus means the order
// is over (callbacks.<platform>.ended_order_statuses).
func (p *Profile) OrderEnded(taobao bool, orderStatus string) bool {
	cb := p.Callbacks.Alibaba
	if taobao {
		cb = p.Callbacks.Taobao
	}
	return slices.Contains(cb.EndedOrderStatuses, orderStatus)
}

// KnownField reports whether a body field is one the profile lists for the
// kind on that platform.
func (p *Profile) KnownField(taobao bool, kind Kind, field string) bool {
	return p.knownFields[idx(taobao)][kind][field]
}

func idx(taobao bool) int {
	if taobao {
		return 0
	}
	return 1
}

// AmountUnit returns the amount unit of a platform.
func (p *Profile) AmountUnit(taobao bool) string {
	if taobao {
		return p.Amounts.Taobao
	}
	return p.Amounts.Alibaba
}

// YuanToFen converts a decimal yuan amount ("12.3", "12.30", "12") to fen
// exactly, refusing a fraction of a fen.
func YuanToFen(s string) (int64, error) {
	r, ok := new(big.Rat).SetString(strings.TrimSpace(s))
	if !ok {
		return 0, fmt.Errorf("amount %.40q: not a number", s)
	}
	r.Mul(r, big.NewRat(100, 1))
	if !r.IsInt() {
		return 0, fmt.Errorf("amount %.40q yuan: has a fraction of a fen; refusing to round", s)
	}
	if !r.Num().IsInt64() {
		return 0, fmt.Errorf("amount %.40q: out of range", s)
	}
	return r.Num().Int64(), nil
}

// FenToYuan writes fen as a yuan decimal with two places ("12.30").
func FenToYuan(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", -fen
	}
	return fmt.Sprintf("%s%d.%02d", sign, fen/100, fen%100)
}
