package refundflow

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/refundhub/refundhub/internal/excerpt"
)

// Command is an operator's instruction to the worker, published by refundctl
// to the commands stream (subject events.CommandSubject) as JSON. ID is unique
// per command; it is the Nats-Msg-Id (so a CLI retry is stored once) and the
// worker's inbox key (so a redelivery is applied once).
//
// A command names its case by platform and order: Taobao cases are one per
// sub-order (SubOrderID required), 1688 cases one per order (OrderID
// required). CaseID may be given instead of the order for commands on an
// existing case.
type Command struct {
	ID         string        `json:"id"`
	Kind       InputKind     `json:"kind"` // request_refund, report_shipment, cancel, send_message, resolve or modify_refund
	Platform   Platform      `json:"platform"`
	OrderID    string        `json:"orderId,omitempty"`
	SubOrderID string        `json:"subOrderId,omitempty"`
	CaseID     int64         `json:"caseId,omitempty"`
	Request    *Request      `json:"request,omitempty"`  // request_refund
	Shipment   *Shipment     `json:"shipment,omitempty"` // report_shipment
	Message    string        `json:"message,omitempty"`  // send_message
	Resolve    *Resolve      `json:"resolve,omitempty"`  // resolve
	Modify     *Modification `json:"modify,omitempty"`   // modify_refund
	Operator   string        `json:"operator,omitempty"` // who issued it, for the timeline
	IssuedAt   time.Time     `json:"issuedAt"`
}

var (
	commandIDPattern = regexp.MustCompile(`^[A-Za-z0-9_.:-]{8,64}$`)
	digits           = regexp.MustCompile(`^[0-9]{1,24}$`)
)

// CommandKinds are the input kinds a Command may carry.
func CommandKinds() []InputKind {
	return []InputKind{InputRequestRefund, InputReportShipment, InputCancel, InputSendMessage, InputResolve, InputModify}
}

// CaseKeys are the order and sub-order the store finds the command's case
// by when it gives no case id (casestore's LatestCase): a Taobao case by
// its sub-order, a 1688 case by its order.
func (c Command) CaseKeys() (orderID, subOrderID string) {
	if c.Platform == PlatformTaobao {
		return c.OrderID, c.SubOrderID
	}
	return c.OrderID, ""
}

// CaseName names what names the command's case when it gives no case id:
// "taobao sub-order N" (a Taobao case is one per sub-order, its order
// aside) or "1688 order N" (one per order). Errors, verdicts and batch
// reports name it so.
func (c Command) CaseName() string {
	if c.Platform == PlatformTaobao {
		return string(c.Platform) + " sub-order " + c.SubOrderID
	}
	return string(c.Platform) + " order " + c.OrderID
}

// Validate checks a command completely; a command that fails is dead-lettered
// by the worker and refused by refundctl before publishing.
//
// It is one list of rules on purpose: every error is collected, so the
// operator sees all that is wrong at once, and refundctl maps each message
// onto the flag that caused it (cmd/refundctl/flags.go).
func (c Command) Validate() error {
	var errs []error
	if !commandIDPattern.MatchString(c.ID) {
		errs = append(errs, errors.New("id: 8 to 64 characters of A-Z a-z 0-9 _ . : -"))
	}
	if !c.Platform.Valid() {
		return errors.Join(append(errs, fmt.Errorf("platform %q: want taobao or 1688", excerpt.Of(string(c.Platform), 40)))...)
	}
	if c.CaseID < 0 {
		errs = append(errs, errors.New("caseId: must be positive"))
	}
	if c.CaseID == 0 {
		switch c.Platform {
		// A missing id is said here, a malformed one below: one fault, one
		// message.
		case PlatformTaobao:
			if c.SubOrderID == "" {
				errs = append(errs, errors.New("subOrderId: required for Taobao, digits only"))
			}
		case Platform1688:
			if c.OrderID == "" {
				errs = append(errs, errors.New("orderId: required for 1688, a positive integer"))
			} else if _, err := strconv.ParseInt(c.OrderID, 10, 64); digits.MatchString(c.OrderID) && (err != nil || strings.HasPrefix(c.OrderID, "0")) {
				errs = append(errs, errors.New("orderId: a positive integer for 1688 (no leading zero, at most 9223372036854775807)"))
			}
		}
	}
	if c.Platform == Platform1688 && c.SubOrderID != "" {
		// One case per 1688 order: a sub-order id would name a second case
		// for the same order (and a second create).
		errs = append(errs, errors.New("subOrderId: a 1688 case is one per order; leave it out (request.orderEntryIds names the sub-orders a refund concerns)"))
	}
	if c.OrderID != "" && !digits.MatchString(c.OrderID) {
		errs = append(errs, errors.New("orderId: digits only, at most 24"))
	}
	if c.SubOrderID != "" && !digits.MatchString(c.SubOrderID) {
		errs = append(errs, errors.New("subOrderId: digits only, at most 24"))
	}
	if utf8.RuneCountInString(c.Operator) > maxField || !utf8.ValidString(c.Operator) {
		errs = append(errs, errors.New("operator: at most 64 characters of UTF-8"))
	}
	switch c.Kind {
	case InputRequestRefund:
		if c.Platform == PlatformTaobao && c.OrderID == "" {
			// The worker reconciles a submit whose answer was lost by listing
			// the order's refunds: it needs the order as well as the sub-order.
			errs = append(errs, errors.New("orderId: required for a Taobao request_refund, besides subOrderId"))
		}
		if c.Request == nil {
			errs = append(errs, errors.New("request: required for request_refund"))
		} else if err := c.Request.Validate(c.Platform); err != nil {
			errs = append(errs, fmt.Errorf("request: %w", err))
		}
	case InputReportShipment:
		if c.Shipment == nil {
			errs = append(errs, errors.New("shipment: required for report_shipment"))
		} else if err := c.Shipment.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("shipment: %w", err))
		}
	case InputCancel:
	case InputSendMessage:
		if n := utf8.RuneCountInString(c.Message); n == 0 || n > maxMessage || !utf8.ValidString(c.Message) {
			errs = append(errs, fmt.Errorf("message: 1 to %d characters of UTF-8", maxMessage))
		}
	case InputResolve:
		if c.CaseID == 0 {
			// Resolving is about one stopped case the operator has looked
			// at, not whichever case an order has open.
			errs = append(errs, errors.New("caseId: required for resolve"))
		}
		if c.Resolve == nil {
			errs = append(errs, errors.New("resolve: required for resolve"))
		} else if err := c.Resolve.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("resolve: %w", err))
		}
	case InputModify:
		if c.CaseID == 0 {
			// Like resolve: a modification is about the refused case the
			// operator looked at.
			errs = append(errs, errors.New("caseId: required for modify_refund"))
		}
		if c.Modify == nil {
			errs = append(errs, errors.New("modify: required for modify_refund"))
		} else if err := c.Modify.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("modify: %w", err))
		}
	default:
		errs = append(errs, fmt.Errorf("kind %q: want request_refund, report_shipment, cancel, send_message, resolve or modify_refund", excerpt.Of(string(c.Kind), 40)))
	}
	return errors.Join(errs...)
}

// DecodeCommand parses and validates a command payload. Unknown fields are
// rejected so a typo in a hand-written command is not silently ignored.
func DecodeCommand(b []byte) (Command, error) {
	var c Command
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Command{}, fmt.Errorf("decode command: %w", err)
	}
	if dec.More() {
		return Command{}, errors.New("decode command: trailing data after the JSON object")
	}
	if err := c.Validate(); err != nil {
		return Command{}, err
	}
	return c, nil
}

// Input converts the command into the Decide input.
func (c Command) Input(now time.Time) Input {
	return Input{Kind: c.Kind, Now: now, ID: c.ID, Request: c.Request, Shipment: c.Shipment, Message: c.Message, Resolve: c.Resolve, Modify: c.Modify}
}

// OrderKey names the case a command is for, as far as the command itself
// says (no store read): its case id, or the Taobao sub-order, or the 1688
// order: the token in its subject (events.CommandSubject), under which the
// worker finds the commands issued before it (casework's earlier.go). ""
// for a payload that does not decode, or names no case.
func OrderKey(payload []byte) string {
	var c struct {
		Platform   Platform `json:"platform"`
		OrderID    string   `json:"orderId"`
		SubOrderID string   `json:"subOrderId"`
		CaseID     int64    `json:"caseId"`
	}
	if json.Unmarshal(payload, &c) != nil {
		return ""
	}
	return orderKey(c.Platform, c.OrderID, c.SubOrderID, c.CaseID)
}

// orderKey is OrderKey of a command naming the case by caseID (> 0), or
// else by its order and sub-order.
func orderKey(plat Platform, orderID, subOrderID string, caseID int64) string {
	switch {
	case caseID > 0:
		return "case:" + strconv.FormatInt(caseID, 10)
	case plat == PlatformTaobao && subOrderID != "":
		return "taobao:" + subOrderID
	case plat == Platform1688 && orderID != "":
		return "1688:" + orderID
	}
	return ""
}
