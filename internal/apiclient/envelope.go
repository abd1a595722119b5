package apiclient

import "encoding/json"

// Envelope is the response wrapper of every endpoint (reference §1):
// {requestId, code, developId, msg, data}. Success is Code == CodeSuccess.
type Envelope struct {
	RequestID string          `json:"requestId"`
	Code      FlexInt         `json:"code"`
	DevelopID FlexString      `json:"developId"`
	Msg       string          `json:"msg"`
	Data      json.RawMessage `json:"data"`
}
