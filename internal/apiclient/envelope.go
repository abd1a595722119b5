package apiclient

import "encoding/json"

// CodeSuccess and MsgSuccess are the sandbox's success markers.
//
// Deprecated: the profile's envelope.success_code and success_msg decide;
// these remain only for the sandbox until it reads the profile.
const (
	CodeSuccess = 200
	MsgSuccess  = "成功"
)

// Envelope is the response wrapper of every endpoint (reference §1):
// {requestId, code, developId, msg, data}. Success is Code == CodeSuccess.
type Envelope struct {
	RequestID string          `json:"requestId"`
	Code      FlexInt         `json:"code"`
	DevelopID FlexString      `json:"developId"`
	Msg       string          `json:"msg"`
	Data      json.RawMessage `json:"data"`
}

// Error codes the sandbox answers with.
//
// Deprecated: the codes are the profile's (error_codes), and the client
// classifies a failure as APIError.Class. These remain only for the sandbox
// until it reads the profile; nothing else may use them.
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
