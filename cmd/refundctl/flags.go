package main

import (
	"regexp"
	"strings"

	"github.com/refundhub/refundhub/internal/refundflow"
)

// fieldFlags maps the JSON field names of refundflow.Command (and of its
// Request and Shipment) to the flags of request, ship, cancel and message
// that set them. refundflow.Command.Validate names fields as JSON does,
// for the worker's dead letters; the operator typed flags, so refundctl
// translates (flagMessage). TestFieldFlagsAreFlags checks every flag here
// exists.
var fieldFlags = map[string]string{
	"id":            "--id",
	"platform":      "--platform",
	"caseId":        "--case",
	"orderId":       "--order",
	"subOrderId":    "--sub-order",
	"operator":      "--operator",
	"message":       "--text",
	"goodsStatus":   "--goods-status",
	"amount":        "--amount",
	"carriage":      "--carriage",
	"orderEntryIds": "--order-entry",
	"returnGoods":   "--type return",
	"reasonId":      "--reason-id",
	"reason":        "--reason",
	"description":   "--description",
	"vouchers":      "--voucher",
	"company":       "--company",
	"waybill":       "--waybill",
	"phone":         "--phone",
}

// proseFields are the field names translated inside a message as well as
// at its start: only the camelCase ones, which cannot be ordinary words.
var proseFields = regexp.MustCompile(`\b(?:request\.)?(orderEntryIds|subOrderId|orderId|reasonId|caseId|goodsStatus|returnGoods)\b`)

// validationLines splits a refundflow validation error into one line per
// problem, without the "request: " or "shipment: " that prefixes the first
// problem of a nested document (errors.Join puts the others on their own
// lines, unprefixed). A modification's fields are named like a request's.
func validationLines(err error) []string {
	var out []string
	for line := range strings.SplitSeq(err.Error(), "\n") {
		line = strings.TrimSpace(line)
		for _, doc := range []string{"request: ", "shipment: ", "modify: "} {
			line = strings.TrimPrefix(line, doc)
		}
		if line != "" {
			out = append(out, line)
		}
	}
	return out
}

// flagMessage rewrites a refundflow validation error in terms of the flags:
// `subOrderId: required for Taobao, digits only` becomes `--sub-order:
// required for Taobao, digits only`. Lines are joined with "; ".
func flagMessage(err error) string {
	lines := validationLines(err)
	for i, line := range lines {
		field, rest := line, ""
		if j := strings.IndexAny(line, ": "); j >= 0 {
			field, rest = line[:j], line[j:]
		}
		if flag, ok := fieldFlags[field]; ok {
			line = flag + rest
		}
		line = proseFields.ReplaceAllStringFunc(line, func(m string) string {
			return fieldFlags[strings.TrimPrefix(m, "request.")]
		})
		if line == "--reason: give --reason-id or reason" { // the one message naming two flags
			line = "--reason-id or --reason: give one"
		}
		lines[i] = line
	}
	return strings.Join(lines, "; ")
}

// ruleOf returns what a validation error says about field: the text after
// "field: " or `field "value": `, "" when it says nothing. The --help texts
// take their limits from here, so that refundflow, which enforces them, is
// the only place they are written (TestHelpStatesRules pins what --help
// must show).
func ruleOf(err error, field string) string {
	if err == nil {
		return ""
	}
	for _, line := range validationLines(err) {
		if rest, ok := strings.CutPrefix(line, field+": "); ok {
			return tidyRule(rest)
		}
		if rest, ok := strings.CutPrefix(line, field+` "`); ok {
			if _, after, ok := strings.Cut(rest, `": `); ok {
				return tidyRule(after)
			}
		}
	}
	return ""
}

// tidyRule drops what --help says around a rule anyway: the platform it is
// listed under, and the "want" of an error.
func tidyRule(s string) string {
	s = strings.TrimPrefix(s, "want ")
	for _, p := range []string{" for 1688", " for Taobao", " on 1688"} {
		s = strings.ReplaceAll(s, p, "")
	}
	return s
}

// rules are the value constraints --help states, each read from the
// validation that enforces it.
type rules struct {
	id, taobaoSubOrder, alibabaOrder                       string
	alibabaGoods, alibabaAmount                            string
	taobaoDescription, alibabaDescription, shipDescription string
	message, company, waybill, phone                       string
}

// validationRules probes refundflow's validation with empty and oversized
// values and keeps what it answers about each field.
func validationRules() rules {
	long := strings.Repeat("x", 10000)
	taobao, alibaba := refundflow.PlatformTaobao, refundflow.Platform1688
	return rules{
		id:                 ruleOf(refundflow.Command{}.Validate(), "id"),
		taobaoSubOrder:     ruleOf(refundflow.Command{Platform: taobao, Kind: refundflow.InputCancel}.Validate(), "subOrderId"),
		alibabaOrder:       ruleOf(refundflow.Command{Platform: alibaba, Kind: refundflow.InputCancel}.Validate(), "orderId"),
		alibabaGoods:       ruleOf(refundflow.Request{}.Validate(alibaba), "goodsStatus"),
		alibabaAmount:      ruleOf(refundflow.Request{}.Validate(alibaba), "amount"),
		taobaoDescription:  ruleOf(refundflow.Request{Description: long}.Validate(taobao), "description"),
		alibabaDescription: ruleOf(refundflow.Request{}.Validate(alibaba), "description"),
		shipDescription:    ruleOf(refundflow.Shipment{Description: long}.Validate(), "description"),
		message:            ruleOf(refundflow.Command{Kind: refundflow.InputSendMessage, Platform: taobao, CaseID: 1}.Validate(), "message"),
		company:            ruleOf(refundflow.Shipment{Phone: " "}.Validate(), "company"),
		waybill:            ruleOf(refundflow.Shipment{Phone: " "}.Validate(), "waybill"),
		phone:              ruleOf(refundflow.Shipment{Phone: " "}.Validate(), "phone"),
	}
}
