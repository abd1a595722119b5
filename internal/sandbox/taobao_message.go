// Taobao's refund messages: T6 (leave one), T8 (list them), and the admin
// endpoint through which the seller or the platform writes one.

package sandbox

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/refundhub/refundhub/internal/excerpt"
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
	if utf8.RuneCountInString(req.RefundMessage) > maxMessageRunes {
		return nil, errf(classInvalid, "refundMessage 超过 %d 字 (too long)", maxMessageRunes)
	}
	if len(req.RefundImages) > maxImagesBytes {
		return nil, errf(classInvalid, "refundImages 过长 (over %d bytes)", maxImagesBytes)
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
	ref.Messages = append(ref.Messages, Message{ID: s.randDigits(12), Owner: OwnerBuyer, Content: req.RefundMessage,
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
	// Oldest first. Messages are appended as they are written, so this only
	// matters if Config.Now ever steps back; ties keep the order written.
	msgs := slices.Clone(ref.Messages)
	slices.SortStableFunc(msgs, func(a, b Message) int { return a.CreatedAt.Compare(b.CreatedAt) })
	out := tbListMessagesOut{Total: len(msgs), PageNo: req.PageNo, PageSize: req.PageSize, List: []tbMessage{}}
	start := (req.PageNo - 1) * req.PageSize
	for i := start; i < len(msgs) && i < start+req.PageSize; i++ {
		out.List = append(out.List, tbMessageOf(msgs[i]))
	}
	return out, nil
}

// tbMessageOf is a message as T8 lists it.
func tbMessageOf(m Message) tbMessage {
	return tbMessage{MessageID: m.ID, Owner: m.Owner, Content: m.Content, Images: m.Images, CreateTime: m.CreatedAt.UnixMilli()}
}

// Limits of a message (the sandbox's guesses): 500 characters and 2000
// bytes of images for T6 and the admin endpoint alike, and, for the admin
// endpoint, a few images, as a chat window would take.
const (
	maxMessageRunes  = 500
	maxMessageImages = 9
	maxImagesBytes   = 2000
)

// MessageRequest is the body of POST /_sandbox/refunds/{refundId}/messages:
// the seller (or the platform) writes on a Taobao refund's conversation.
type MessageRequest struct {
	Author  string   `json:"author"`  // "seller" or "platform" (listed by T8 as owner "system")
	Content string   `json:"content"` // required, at most 500 characters
	Images  []string `json:"images"`  // optional absolute http(s) URLs, at most 9; T8 joins them with commas
	// PushCallback queues the refund message of the refund's current status,
	// as a status change would. Off by default: whether a new seller message
	// makes the platform push anything is UNKNOWN.
	PushCallback bool `json:"push_callback"`
}

// validate checks the request and returns the T8 owner it writes as.
func (m MessageRequest) validate() (owner string, err error) {
	switch m.Author {
	case "seller":
		owner = OwnerSeller
	case "platform":
		owner = OwnerSystem
	default:
		return "", fmt.Errorf("author %q: want seller or platform", excerpt.Of(m.Author, 30))
	}
	switch n := utf8.RuneCountInString(m.Content); {
	case strings.TrimSpace(m.Content) == "":
		return "", errors.New("content is required")
	case n > maxMessageRunes:
		return "", fmt.Errorf("content has %d characters; at most %d", n, maxMessageRunes)
	}
	if len(m.Images) > maxMessageImages {
		return "", fmt.Errorf("%d images; at most %d", len(m.Images), maxMessageImages)
	}
	for i, img := range m.Images {
		if err := checkImageURL(img); err != nil {
			return "", fmt.Errorf("images[%d]: %w", i, err)
		}
	}
	if n := len(strings.Join(m.Images, ",")); n > maxImagesBytes {
		return "", fmt.Errorf("images take %d bytes joined; at most %d", n, maxImagesBytes)
	}
	return owner, nil
}

// checkImageURL accepts an absolute http(s) URL with a host and no comma or
// white space (T8 writes the images as one comma-separated string).
func checkImageURL(s string) error {
	if strings.ContainsAny(s, ", \t\r\n") {
		return fmt.Errorf("%q: no commas or white space in an image URL", excerpt.Of(s, 50))
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q: want an absolute http or https URL", excerpt.Of(s, 50))
	}
	return nil
}

// adminWriteMessage: POST /_sandbox/refunds/{refundId}/messages, a
// MessageRequest -> 201 and the message as T8 lists it. It works in any
// status, closed ones included (the seller may write after the end; T6's
// refusal on closed refunds is the buyer's side), changes nothing else on the
// refund (no status, last-change time or pending seller decision moves) and
// counts in no Stats counter.
func (s *Sandbox) adminWriteMessage(r *http.Request) (any, *adminError) {
	var req MessageRequest
	if e := decodeAdmin(r, &req); e != nil {
		return nil, e
	}
	owner, err := req.validate()
	if err != nil {
		return nil, adminErr(http.StatusBadRequest, AdminInvalidArgument, "%v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id := r.PathValue("refundId")
	ref := s.refunds[id]
	switch {
	case ref == nil:
		return nil, adminErr(http.StatusNotFound, AdminNotFound, "refund %s not found", excerpt.Of(id, 50))
	case ref.Platform != PlatformTaobao:
		return nil, adminErr(http.StatusConflict, AdminUnsupported,
			"refund %s is a 1688 refund: 1688 has no message API (no T6/T8), so it keeps no conversation", ref.RefundID)
	}
	m := Message{ID: s.randDigits(12), Owner: owner, Content: req.Content, Images: strings.Join(req.Images, ","), CreatedAt: s.now()}
	ref.Messages = append(ref.Messages, m)
	if req.PushCallback {
		s.emitRefundLocked(ref)
	}
	return created{tbMessageOf(m)}, nil
}
