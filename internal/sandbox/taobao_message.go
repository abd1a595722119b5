// Taobao's refund messages: T6 (leave one) and T8 (list them).

package sandbox

import (
	"net/http"
	"unicode/utf8"
)

// taobaoSubmitMessage: T6.
func (s *Sandbox) taobaoSubmitMessage(r *http.Request, _ *apiCall) (any, *apiError) {
	body, e := readBody(r)
	if e != nil {
		return nil, e
	}
	var req tbMessageIn
	if _, e := decodeJSON(body, &req, "refundId", "refundMessage"); e != nil {
		return nil, e
	}
	if utf8.RuneCountInString(req.RefundMessage) > 500 {
		return nil, errf(classInvalid, "refundMessage 超过 500 字 (too long)")
	}
	if len(req.RefundImages) > 2000 {
		return nil, errf(classInvalid, "refundImages 过长 (over 2000 bytes)")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ref, e := s.taobaoRefundLocked(req.RefundID)
	if e != nil {
		return nil, e
	}
	if ref.terminal() {
		return nil, illegal(ref, "message")
	}
	ref.Messages = append(ref.Messages, Message{ID: s.randDigits(12), Owner: "buyer", Content: req.RefundMessage,
		Images: req.RefundImages, CreatedAt: s.now()})
	return tbMessageOut{Currency: currencyCNY, DistributorID: distributorID, MessageSubmitSuccess: true}, nil
}

// taobaoListMessages: T8 (shape INFERRED; not the profile's T1 list).
func (s *Sandbox) taobaoListMessages(r *http.Request, _ *apiCall) (any, *apiError) {
	body, e := readBody(r)
	if e != nil {
		return nil, e
	}
	var req tbListMessagesIn
	if _, e := decodeJSON(body, &req, "refundId", "pageSize"); e != nil {
		return nil, e
	}
	if req.PageSize < 1 || req.PageSize > MaxListPageSize {
		return nil, errf(classInvalid, "pageSize %d 不合法 (want 1..%d)", req.PageSize, MaxListPageSize)
	}
	if req.PageNo == 0 {
		req.PageNo = 1
	}
	if req.PageNo < 1 || req.PageNo > 100000 {
		return nil, errf(classInvalid, "pageNo %d 不合法 (want >= 1)", req.PageNo)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ref, e := s.taobaoRefundLocked(req.RefundID)
	if e != nil {
		return nil, e
	}
	out := tbListMessagesOut{Total: len(ref.Messages), PageNo: req.PageNo, PageSize: req.PageSize, List: []tbMessage{}}
	start := (req.PageNo - 1) * req.PageSize
	for i := start; i < len(ref.Messages) && i < start+req.PageSize; i++ {
		m := ref.Messages[i]
		out.List = append(out.List, tbMessage{MessageID: m.ID, Owner: m.Owner, Content: m.Content, Images: m.Images,
			CreateTime: m.CreatedAt.UnixMilli()})
	}
	return out, nil
}
