// Refund statuses seen in answers: each checked against the profile's names,
// and the profile lines the doctor suggests for the ones it does not list.

package doctor

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/refundhub/refundhub/internal/platform"
)

// seenStatus is one refund status the platform sent.
type seenStatus struct {
	taobao   bool
	refundID string
	raw      string
	numeric  bool
	endpoint platform.Endpoint
}

// taobaoStatus collects a Taobao refundOrder's status.
func (r *run) taobaoStatus(e platform.Endpoint, order json.RawMessage) {
	raw, ok := scalar(field(order, "refundStatus"))
	if !ok || strings.TrimSpace(raw) == "" {
		return
	}
	id, _ := scalar(field(order, "refundId"))
	r.statuses = append(r.statuses, seenStatus{taobao: true, refundID: id, raw: raw,
		numeric: isDigits(strings.TrimSpace(raw)), endpoint: e})
}

func statusKey(taobao bool, ph platform.Phase) string {
	if taobao {
		return "taobao.refund_status." + string(ph)
	}
	return "alibaba.refund_status." + string(ph)
}

func (s seenStatus) String() string {
	where := string(s.endpoint)
	if s.refundID != "" {
		where = "refund " + s.refundID + ", " + where
	}
	if s.numeric {
		return fmt.Sprintf("code %s (%s)", s.raw, where)
	}
	return fmt.Sprintf("%q (%s)", s.raw, where)
}

// statusEntry is a status entry the patch rewrites.
type statusEntry struct {
	names  []string
	code   *int
	reason []string
}

// resolveStatuses compares every status seen with the map. A status outside
// it is matched to a phase only when that is safe: a name equal to a mapped
// one but for case and punctuation ("WaitSellerAgree", WAIT_SELLER_AGREE),
// or a number seen on the same refund as a name that matched (the list
// names a status, the v2 query numbers it). Anything else is left to the
// operator: a wrong phase can end a case.
func (r *run) resolveStatuses() {
	p := r.prof
	entries := map[platform.Phase]*statusEntry{}
	entry := func(ph platform.Phase) *statusEntry {
		if entries[ph] == nil {
			entries[ph] = &statusEntry{}
		}
		return entries[ph]
	}
	direct := func(s seenStatus) (platform.Phase, bool) {
		if s.taobao {
			return p.TaobaoPhase(s.raw)
		}
		return p.AlibabaPhase(s.raw)
	}
	// Names first: in the map, or the same but for case and punctuation.
	named := map[string]platform.Phase{} // refund id -> phase its name says
	explained := map[string]bool{}       // raw values
	seenAny := map[bool]bool{}
	for _, s := range r.statuses {
		seenAny[s.taobao] = true
		ph, ok := direct(s)
		switch {
		case ok:
			r.confirm(statusKey(s.taobao, ph), s.String())
			explained[s.raw] = true
		case !s.numeric:
			if ph, ok = r.sameName(s); ok {
				r.contradict(statusKey(s.taobao, ph), s.String())
				e := entry(ph)
				e.names = appendNew(e.names, s.raw)
				e.reason = appendNew(e.reason, fmt.Sprintf("%q is %q but for case and punctuation", s.raw, r.names(s.taobao, ph)[0]))
				explained[s.raw] = true
			}
		}
		if ok && !s.numeric && s.refundID != "" {
			named[s.refundID] = ph
		}
	}
	// Then Taobao numbers, through the name of the same refund.
	for _, s := range r.statuses {
		if !s.taobao || !s.numeric || s.refundID == "" {
			continue
		}
		pn, ok := named[s.refundID]
		if !ok {
			continue
		}
		code, _ := strconv.Atoi(strings.TrimSpace(s.raw))
		pc, okC := direct(s)
		if okC && pc == pn {
			continue
		}
		r.contradict(statusKey(true, pn), fmt.Sprintf("refund %s is %s by name and code %d", s.refundID, pn, code))
		e := entry(pn)
		e.code = &code
		e.reason = appendNew(e.reason, fmt.Sprintf("refund %s is %s by name and %d by number", s.refundID, pn, code))
		explained[s.raw] = true
		if okC {
			r.decide(statusKey(true, pc)+".code", fmt.Sprintf("code %d is %s's (refund %s), not %s's: set %s's real code", code, pn, s.refundID, pc, pc),
				fmt.Sprintf("%s = { names = [%s], code = <its code> }", statusKey(true, pc), quoteAll(p.Taobao.RefundStatus[pc].Names)))
		}
	}
	// What is left matches no phase.
	for _, s := range r.statuses {
		if explained[s.raw] {
			continue
		}
		explained[s.raw] = true
		table := "alibaba.refund_status"
		if s.taobao {
			table = "taobao.refund_status"
		}
		r.contradict(table, s.String()+" matches no phase")
		r.decide(table, fmt.Sprintf("%s matches no phase: add it under the phase it means (one of %s). A wrong phase can end a case: a closed refund read as a success, say",
			s, phaseNames()), r.statusSuggestion(s))
	}
	for _, taobao := range []bool{true, false} {
		table := "alibaba.refund_status"
		if taobao {
			table = "taobao.refund_status"
		}
		if _, expected := r.checks[table]; expected && seenAny[taobao] && len(r.checks[table].contradicted) == 0 {
			r.confirm(table, "every status seen is in the map or matched to a phase")
		}
	}
	taobao := r.opts.Platform == Taobao
	for _, ph := range platform.Phases() {
		e := entries[ph]
		if e == nil {
			continue
		}
		value := map[string]any{"names": appendNew(e.names, r.names(taobao, ph)...)}
		if taobao {
			code := p.TaobaoCode(ph)
			if e.code != nil {
				code = *e.code
			}
			value["code"] = code
		}
		r.change(statusKey(taobao, ph), value, strings.Join(e.reason, "; "))
	}
}

func (r *run) names(taobao bool, ph platform.Phase) []string {
	if taobao {
		return r.prof.Taobao.RefundStatus[ph].Names
	}
	return r.prof.Alibaba.RefundStatus[ph].Names
}

// sameName finds the one phase with a name equal to s but for case and
// punctuation ("WaitSellerAgree" and WAIT_SELLER_AGREE).
func (r *run) sameName(s seenStatus) (platform.Phase, bool) {
	var found []platform.Phase
	for _, ph := range platform.Phases() {
		for _, n := range r.names(s.taobao, ph) {
			if squash(n) == squash(s.raw) && !slices.Contains(found, ph) {
				found = append(found, ph)
			}
		}
	}
	if len(found) == 1 {
		return found[0], true
	}
	return "", false
}

// statusSuggestion is the commented line for a status matching no phase:
// for the phase whose name it contains (or that contains it), if exactly
// one does, else for a phase to fill in.
func (r *run) statusSuggestion(s seenStatus) string {
	var near []platform.Phase
	for _, ph := range platform.Phases() {
		for _, n := range r.names(s.taobao, ph) {
			a, b := squash(n), squash(s.raw)
			if (strings.Contains(a, b) || strings.Contains(b, a)) && !slices.Contains(near, ph) {
				near = append(near, ph)
			}
		}
	}
	value := strconv.Quote(s.raw)
	if s.numeric {
		if len(near) == 1 {
			return fmt.Sprintf("%s = { names = [%s], code = %s }   # perhaps: check", statusKey(true, near[0]), quoteAll(r.names(true, near[0])), s.raw)
		}
		return fmt.Sprintf("taobao.refund_status.<phase> = { names = [<its names>], code = %s }", s.raw)
	}
	code := func(ph platform.Phase) string {
		if !s.taobao {
			return ""
		}
		return fmt.Sprintf(", code = %d", r.prof.TaobaoCode(ph))
	}
	if len(near) == 1 {
		return fmt.Sprintf("%s = { names = [%s, %s]%s }   # perhaps: check", statusKey(s.taobao, near[0]), value, quoteAll(r.names(s.taobao, near[0])), code(near[0]))
	}
	table := "alibaba.refund_status"
	extra := ""
	if s.taobao {
		table, extra = "taobao.refund_status", ", code = <its code>"
	}
	return fmt.Sprintf("%s.<phase> = { names = [%s, <its other names>]%s }", table, value, extra)
}

func phaseNames() string {
	var s []string
	for _, ph := range platform.Phases() {
		s = append(s, string(ph))
	}
	return strings.Join(s, ", ")
}

// squash keeps only letters and digits, upper-cased.
func squash(s string) string {
	return strings.ToUpper(strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s))
}

func appendNew(list []string, more ...string) []string {
	for _, m := range more {
		if !slices.Contains(list, m) {
			list = append(list, m)
		}
	}
	return list
}
