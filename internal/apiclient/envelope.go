package apiclient

import "encoding/json"

// CodeSuccess is the envelope code of a successful call (reference §1, §7).
const CodeSuccess = 200

// MsgSuccess is the message the platform sends with CodeSuccess.
const MsgSuccess = "成功"

// Envelope is the response wrapper of every endpoint (reference §1):
// {requestId, code, developId, msg, data}. Success is Code == CodeSuccess.
type Envelope struct {
	RequestID string          `json:"requestId"`
	Code      FlexInt         `json:"code"`
	DevelopID FlexString      `json:"developId"`
	Msg       string          `json:"msg"`
	Data      json.RawMessage `json:"data"`
}

// Error codes. The platform's error-code table is UNKNOWN (reference §7); these
// are the codes the sandbox answers with and the client's defaults for deciding
// what is retryable. They are guesses, documented as such in docs/platform-guesses.md, and the
// client's RetryableCodes can be reconfigured when the real table is known.
const (
	CodeMalformedJSON    = 4001 // body is not valid JSON or has wrong field types
	CodeMissingParam     = 4002 // a required field is missing or empty
	CodeInvalidParam     = 4003 // a field is present but out of range or not allowed
	CodeMissingAuth      = 4011 // a required auth header is missing
	CodeUnknownAccessKey = 4012 // access-key is not known
	CodeBadSignature     = 4013 // signature does not match
	CodeExpiredTimestamp = 4014 // timestamp outside the ±600 s window or unparsable
	CodeNotFound         = 4041 // order, sub-order or refund does not exist
	CodeIllegalState     = 4091 // the refund's state does not allow this operation
	CodeDuplicateRefund  = 4092 // an open refund already exists for the order/sub-order
	CodeRateLimited      = 4290 // too many requests; retry later
	CodeInternal         = 5000 // platform-side failure; retry later
)

// DefaultNotAppliedCodes are the envelope codes the client takes as proof
// that a call had no effect (NotApplied): validation, authentication, not
// found, illegal state, duplicate and rate limiting. INFERRED: the platform's
// error-code table is not documented (upstream-api.md §7); these are the
// sandbox's codes. Any other failing code leaves the outcome unknown.
func DefaultNotAppliedCodes() []int {
	return []int{CodeMalformedJSON, CodeMissingParam, CodeInvalidParam, CodeMissingAuth, CodeUnknownAccessKey,
		CodeBadSignature, CodeExpiredTimestamp, CodeNotFound, CodeIllegalState, CodeDuplicateRefund, CodeRateLimited}
}

// DefaultRetryableCodes are the envelope codes the client treats as transient.
func DefaultRetryableCodes() []int { return []int{CodeRateLimited, CodeInternal} }
