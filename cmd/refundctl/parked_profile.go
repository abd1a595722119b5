// --profile-lines: the platform profile TOML suggested for parked callback
// types, with the kind each type seems to be and its new fields.

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/refundhub/refundhub/internal/callback"
	"github.com/refundhub/refundhub/internal/platform"
)

// profileKind is the kind the loaded profile gives the type, "" when it
// does not know it (or the platform is not one of the two).
func (r parkedReport) profileKind(t *parkedType) platform.Kind {
	p, ok := callbackPlatform(t.platform)
	if !ok {
		return ""
	}
	k, _ := r.prof.CallbackKind(p == callback.PlatformTaobao, t.typ)
	return k
}

// suggestedKind is the kind the bodies show: refund when every one carries
// refundId. Nothing tells order_status from price_modify (both bodies carry
// the same order fields), so those are for the operator.
func (t *parkedType) suggestedKind() platform.Kind {
	if t.allRefundID && t.count > t.unreadable {
		return platform.KindRefund
	}
	return ""
}

// unknownType reports whether the receiver parked the type as unknown.
func (t *parkedType) unknownType() bool {
	for _, r := range t.reasons {
		if r.reason == string(callback.ParkUnknownType) {
			return true
		}
	}
	return false
}

// seenLine is the comment that starts each type's entry.
func (t *parkedType) seenLine() string {
	return fmt.Sprintf("# %s: %d parked (%s), first %s UTC, last %s UTC", cell(t.typ, 0), t.count, cell(reasonsCell(t), 0),
		timeHuman(t.first), timeHuman(t.last))
}

// profileLines builds the TOML for --profile-lines: per platform a types
// table with one entry per parked unknown type whose kind is known (from the
// bodies or --kind), and a fields table whose lists hold the profile's
// fields plus the new ones, since a list in UPSTREAM_PROFILE replaces the
// built-in one whole. Everything else is a comment.
func (r parkedReport) profileLines() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Platform profile lines for the parked callback types: %d parked callbacks read %s.\n", r.scan.scanned, r.window())
	b.WriteString("# Paste into the file named by UPSTREAM_PROFILE (merge the keys into a table of the same name if the\n")
	b.WriteString("# file has one) and restart the receiver and the worker. A fields list replaces the profile's list\n")
	b.WriteString("# whole, so each list below holds the profile's current fields and the new ones.\n")
	if note := r.capNote(); note != "" {
		b.WriteString("# " + note + "\n")
	}
	if len(r.scan.types) == 0 {
		b.WriteString("# No parked callbacks: nothing to add.\n")
		return b.String()
	}
	for _, p := range []callback.Platform{callback.PlatformTaobao, callback.Platform1688} {
		r.platformLines(&b, p)
	}
	for _, t := range r.scan.types {
		if _, ok := callbackPlatform(t.platform); !ok {
			fmt.Fprintf(&b, "\n%s\n# on platform %q, which is neither taobao nor 1688: no profile line applies.\n", t.seenLine(), cell(t.platform, 40))
		}
	}
	return b.String()
}

// platformLines writes one platform's part of profileLines.
func (r parkedReport) platformLines(b *strings.Builder, p callback.Platform) {
	taobao := p == callback.PlatformTaobao
	var types, notes []string
	newFields := map[platform.Kind][]string{}
	fieldSources := map[platform.Kind][]string{}
	for _, t := range r.scan.types {
		if t.platform != p.String() {
			continue
		}
		if !t.unknownType() {
			notes = append(notes, t.seenLine(),
				fmt.Sprintf("#   %s is a known type whose bodies did not pass the checks; no profile line changes that. Fields seen: %s",
					cell(t.typ, 0), fieldsText(t)))
			continue
		}
		if k, ok := r.prof.CallbackKind(taobao, t.typ); ok {
			notes = append(notes, t.seenLine(),
				fmt.Sprintf("#   the profile already knows %s as %s (these were parked before it did): nothing to add", cell(t.typ, 0), k))
			continue
		}
		if err := usableType(p, t.typ); err != nil {
			types = append(types, t.seenLine(), "#   cannot become a known type, so the receiver keeps parking it: "+cell(err.Error(), 200))
			continue
		}
		kind, why := t.suggestedKind(), "every body carries "+refundIDField
		switch {
		case kind != "" && r.q.kind != "" && r.q.kind != kind:
			why += fmt.Sprintf("; --kind %s not applied: edit the line if this is not a refund", r.q.kind)
		case kind == "" && r.q.kind != "":
			kind, why = r.q.kind, "given by --kind"
		}
		if kind == "" {
			types = append(types, t.seenLine(),
				fmt.Sprintf("#   kind not inferred: the bodies do not all carry %s, so %s or %s is for the operator to pick;", refundIDField, platform.KindOrderStatus, platform.KindPriceModify),
				fmt.Sprintf("#   uncomment the line with the right kind, or rerun with --type %s --kind KIND. Fields seen: %s", cell(t.typ, 0), fieldsText(t)),
				fmt.Sprintf("# %s = %q   # or %q", tomlKey(t.typ), platform.KindOrderStatus, platform.KindPriceModify))
			continue
		}
		types = append(types, t.seenLine()+"; kind "+string(kind)+": "+why, fmt.Sprintf("%s = %q", tomlKey(t.typ), kind))
		for _, f := range t.fields {
			if !r.prof.KnownField(taobao, kind, f) && !slices.Contains(newFields[kind], f) {
				newFields[kind] = append(newFields[kind], f)
			}
		}
		fieldSources[kind] = append(fieldSources[kind], t.typ)
	}
	if len(types)+len(notes) == 0 {
		return
	}
	table := profileTable(p)
	if len(notes) > 0 {
		fmt.Fprintf(b, "\n# %s\n%s\n", p, strings.Join(notes, "\n"))
	}
	if len(types) > 0 {
		fmt.Fprintf(b, "\n[%s.types]\n%s\n", table, strings.Join(types, "\n"))
	}
	var fieldLines []string
	for _, k := range platform.Kinds() {
		srcs := fieldSources[k]
		if len(srcs) == 0 {
			continue
		}
		if len(newFields[k]) == 0 {
			fieldLines = append(fieldLines, fmt.Sprintf("# %s: the profile already lists every field of %s", k, strings.Join(srcs, ", ")))
			continue
		}
		all := append(slices.Clone(r.profileFields(taobao, k)), newFields[k]...)
		fieldLines = append(fieldLines,
			fmt.Sprintf("# %s: the profile's fields and %s, seen in %s", k, strings.Join(newFields[k], ", "), strings.Join(srcs, ", ")),
			fmt.Sprintf("%s = %s", k, tomlStrings(all)))
	}
	if len(fieldLines) > 0 {
		fmt.Fprintf(b, "\n[%s.fields]\n%s\n", table, strings.Join(fieldLines, "\n"))
	}
}

// profileFields is the loaded profile's field list of a kind.
func (r parkedReport) profileFields(taobao bool, k platform.Kind) []string {
	if taobao {
		return r.prof.Callbacks.Taobao.Fields[k]
	}
	return r.prof.Callbacks.Alibaba.Fields[k]
}

// usableType asks the two owners of the rules whether typ can be a known
// type: the profile (which validates its type table) and the receiver's
// parser (which puts a known type in a subject).
func usableType(p callback.Platform, typ string) error {
	kind := platform.KindOrderStatus // any kind: only the name is in question
	var over bytes.Buffer
	fmt.Fprintf(&over, "[%s.types]\n%s = %q\n", profileTable(p), tomlKey(typ), kind)
	if _, err := platform.Parse(over.Bytes(), "(the printed line)"); err != nil {
		return err
	}
	if _, err := callback.NewParser(callback.TypeNames{p: {typ: callback.Kind(kind)}}); err != nil {
		return err
	}
	return nil
}

func fieldsText(t *parkedType) string {
	if len(t.fields) == 0 {
		return "none"
	}
	s := make([]string, len(t.fields))
	for i, f := range t.fields {
		s[i] = cell(f, 64)
	}
	out := strings.Join(s, ", ")
	if t.moreFields > 0 {
		out += fmt.Sprintf(" and %d more", t.moreFields)
	}
	return out
}

// tomlKey writes a TOML key: bare when it can be, else a quoted string.
func tomlKey(k string) string {
	bare := k != ""
	for _, c := range k {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			bare = false
			break
		}
	}
	if bare {
		return k
	}
	return tomlString(k)
}

// tomlString writes a TOML basic string. JSON's escapes (\" \\ \n \uXXXX …)
// are all TOML escapes too, and encoding/json escapes every control
// character; HTML escaping is off so '<' stays readable.
func tomlString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}

func tomlStrings(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = tomlString(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
