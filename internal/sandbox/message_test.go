package sandbox

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/refundhub/refundhub/internal/platform"
)

// thread lists a Taobao refund's whole conversation through T8.
func (e *testEnv) thread(refundID string) []messageResp {
	e.t.Helper()
	var out listMessagesResp
	e.mustOK(http.MethodPost, paths.TaobaoListMessages, listMessagesReq{RefundID: refundID, PageSize: MaxListPageSize}, &out)
	if out.Total != len(out.List) {
		e.t.Fatalf("T8 %s: total %d but %d items on one page of %d", refundID, out.Total, len(out.List), MaxListPageSize)
	}
	return out.List
}

// writeMessage posts body to the refund's admin messages endpoint.
func (e *testEnv) writeMessage(refundID string, body any) (int, []byte) {
	e.t.Helper()
	return e.admin(http.MethodPost, "/_sandbox/refunds/"+url.PathEscape(refundID)+"/messages", body)
}

func TestAdminWriteMessage(t *testing.T) {
	e := newEnv(t, nil)
	ref := e.seed(RefundSeed{Platform: PlatformTaobao, SubOrderID: "6600000000000000001", Status: tbWaitAgree, RefundDesc: "尺码不对"})
	before := e.thread(ref.RefundID)

	images := []string{"https://img.example.com/a.jpg", "http://img.example.com/b.png?x=1"}
	status, raw := e.writeMessage(ref.RefundID, MessageRequest{Author: "seller", Content: "请补充照片", Images: images})
	if status != http.StatusCreated {
		t.Fatalf("POST messages (seller): HTTP %d %s; want 201", status, raw)
	}
	var got messageResp
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	want := messageResp{MessageID: got.MessageID, Owner: OwnerSeller, Content: "请补充照片", Images: strings.Join(images, ","), CreateTime: got.CreateTime}
	if got != want || got.MessageID == "" || got.CreateTime <= 0 {
		t.Errorf("POST messages answered %+v; want %+v with an id and a creation time", got, want)
	}

	status, raw = e.writeMessage(ref.RefundID, MessageRequest{Author: "platform", Content: "平台介入处理中"})
	if status != http.StatusCreated {
		t.Fatalf("POST messages (platform): HTTP %d %s; want 201", status, raw)
	}
	var plat messageResp
	_ = json.Unmarshal(raw, &plat)

	thread := e.thread(ref.RefundID)
	if len(thread) != len(before)+2 {
		t.Fatalf("T8 after two admin messages: %d messages; want %d", len(thread), len(before)+2)
	}
	seen := 0
	for _, m := range thread {
		if m.MessageID == got.MessageID {
			seen++
			if m != got {
				t.Errorf("T8 lists %+v; the endpoint answered %+v", m, got)
			}
		}
	}
	if seen != 1 {
		t.Errorf("T8 lists message %s %d times; want once", got.MessageID, seen)
	}
	last := thread[len(thread)-1]
	if last.MessageID != plat.MessageID || last.Owner != OwnerSystem || last.Content != "平台介入处理中" || last.Images != "" {
		t.Errorf("T8 last message %+v; want the platform's %+v as owner %s", last, plat, OwnerSystem)
	}
	for i := 1; i < len(thread); i++ {
		if thread[i].CreateTime < thread[i-1].CreateTime {
			t.Errorf("T8 not oldest first: %d then %d", thread[i-1].CreateTime, thread[i].CreateTime)
		}
	}

	// Paging: page 2 of size 1 is the second message.
	var page listMessagesResp
	e.mustOK(http.MethodPost, paths.TaobaoListMessages, listMessagesReq{RefundID: ref.RefundID, PageNo: 2, PageSize: 1}, &page)
	if page.Total != len(thread) || page.PageNo != 2 || page.PageSize != 1 || len(page.List) != 1 || page.List[0] != thread[1] {
		t.Errorf("T8 page 2 of 1 = %+v; want total %d and %+v", page, len(thread), thread[1])
	}

	// A message moves nothing else and pushes nothing by default.
	after := e.refund(ref.RefundID)
	if after.Status != ref.Status || !after.ModifiedAt.Equal(ref.ModifiedAt) {
		t.Errorf("after messages: status %s modified %v; want %s %v unchanged", after.Status, after.ModifiedAt, ref.Status, ref.ModifiedAt)
	}
	if n := e.callbackSubjects()[ref.RefundID]; n != 0 {
		t.Errorf("callbacks without push_callback = %d; want 0", n)
	}

	// The seller may write on a finished refund too.
	e.adminOK(http.MethodPost, "/_sandbox/refunds/"+ref.RefundID+"/actions", RefundAction{Action: "close"}, nil)
	if status, raw := e.writeMessage(ref.RefundID, MessageRequest{Author: "seller", Content: "已关闭，谢谢"}); status != http.StatusCreated {
		t.Errorf("POST messages on a closed refund: HTTP %d %s; want 201", status, raw)
	}
}

func TestAdminWriteMessageRejects(t *testing.T) {
	e := newEnv(t, nil)
	tb := e.seed(RefundSeed{Platform: PlatformTaobao, SubOrderID: "6600000000000000002", Status: tbWaitAgree})
	ab := e.seed(RefundSeed{Platform: Platform1688, OrderID: "3600000000000000002", Status: abWaitAgree})
	before := len(e.thread(tb.RefundID))

	tests := []struct {
		name   string
		id     string
		body   string
		status int
		code   string
	}{
		{"no author", tb.RefundID, `{"content":"x"}`, 400, AdminInvalidArgument},
		{"buyer author", tb.RefundID, `{"author":"buyer","content":"x"}`, 400, AdminInvalidArgument},
		{"no content", tb.RefundID, `{"author":"seller"}`, 400, AdminInvalidArgument},
		{"blank content", tb.RefundID, `{"author":"seller","content":"  \n"}`, 400, AdminInvalidArgument},
		{"content too long", tb.RefundID, `{"author":"seller","content":"` + strings.Repeat("长", maxMessageRunes+1) + `"}`, 400, AdminInvalidArgument},
		{"relative image", tb.RefundID, `{"author":"seller","content":"x","images":["/a.jpg"]}`, 400, AdminInvalidArgument},
		{"ftp image", tb.RefundID, `{"author":"seller","content":"x","images":["ftp://h/a.jpg"]}`, 400, AdminInvalidArgument},
		{"image with a comma", tb.RefundID, `{"author":"seller","content":"x","images":["https://h/a,b.jpg"]}`, 400, AdminInvalidArgument},
		{"too many images", tb.RefundID, `{"author":"seller","content":"x","images":[` +
			strings.TrimSuffix(strings.Repeat(`"https://h/a.jpg",`, maxMessageImages+1), ",") + `]}`, 400, AdminInvalidArgument},
		{"images not a list", tb.RefundID, `{"author":"seller","content":"x","images":"https://h/a.jpg"}`, 400, AdminMalformedJSON},
		{"unknown field", tb.RefundID, `{"author":"seller","content":"x","owner":"seller"}`, 400, AdminMalformedJSON},
		{"not json", tb.RefundID, `hello`, 400, AdminMalformedJSON},
		{"1688 refund", ab.RefundID, `{"author":"seller","content":"x"}`, 409, AdminUnsupported},
		{"unknown refund", "123456789", `{"author":"seller","content":"x"}`, 404, AdminNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, raw := e.writeMessage(tc.id, tc.body)
			if status != tc.status || adminErrCode(t, raw) != tc.code {
				t.Errorf("POST messages %s on %s: HTTP %d %s; want %d %s", tc.body, tc.id, status, raw, tc.status, tc.code)
			}
		})
	}
	if status, raw := e.admin(http.MethodGet, "/_sandbox/refunds/"+tb.RefundID+"/messages", nil); status != http.StatusMethodNotAllowed {
		t.Errorf("GET messages: HTTP %d %s; want 405", status, raw)
	}
	if n := len(e.thread(tb.RefundID)); n != before {
		t.Errorf("T8 after rejected messages: %d messages; want %d (nothing stored)", n, before)
	}
	if n := len(e.refund(ab.RefundID).Messages); n != 0 {
		t.Errorf("1688 refund has %d messages; want 0", n)
	}
	if n := len(e.callbackSubjects()); n != 0 {
		t.Errorf("callbacks after rejected messages: %d; want 0", n)
	}
}

func TestAdminWriteMessagePushCallback(t *testing.T) {
	rc := newReceiver(t, nil)
	e := newEnv(t, func(c *Config) { c.CallbackURL = rc.srv.URL })
	ref := e.seed(RefundSeed{Platform: PlatformTaobao, SubOrderID: "6600000000000000003", Status: tbWaitAgree})
	if status, raw := e.writeMessage(ref.RefundID, MessageRequest{Author: "seller", Content: "请寄回", PushCallback: true}); status != http.StatusCreated {
		t.Fatalf("POST messages push_callback: HTTP %d %s; want 201", status, raw)
	}
	waitFor(t, "the push", func() bool { return len(rc.pushes()) >= 1 })
	var env CallbackEnvelope
	if err := json.Unmarshal(rc.pushes()[0].Raw, &env); err != nil {
		t.Fatalf("decode push %s: %v", rc.pushes()[0].Raw, err)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(env.MessageBody), &body); err != nil {
		t.Fatalf("decode messageBody %q: %v", env.MessageBody, err)
	}
	if k, ok := prof.CallbackKind(true, env.MessageType); !ok || k != platform.KindRefund || body["refundId"] != ref.RefundID || body["refundStatus"] != tbWaitAgree {
		t.Errorf("push %s %s; want a refund message for %s in %s", env.MessageType, env.MessageBody, ref.RefundID, tbWaitAgree)
	}
	if n := e.callbackSubjects()[ref.RefundID]; n != 1 {
		t.Errorf("callbacks with push_callback = %d; want 1", n)
	}
}

// TestRefusalIsASellerMessage: the seller's refusal reason is in the
// conversation, whether the refusal came from the policy, an admin action or
// a seeded refused refund.
func TestRefusalIsASellerMessage(t *testing.T) {
	e := newEnv(t, nil)
	hasReason := func(id, reason string) bool {
		for _, m := range e.thread(id) {
			if m.Owner == OwnerSeller && m.Content == reason {
				return true
			}
		}
		return false
	}
	acted := e.seed(RefundSeed{Platform: PlatformTaobao, SubOrderID: "6600000000000000004", Status: tbWaitAgree})
	e.adminOK(http.MethodPost, "/_sandbox/refunds/"+acted.RefundID+"/actions", RefundAction{Action: "refuse", Reason: "商品已使用"}, nil)
	seeded := e.seed(RefundSeed{Platform: PlatformTaobao, SubOrderID: "6600000000000000005", Status: tbRefused, RefuseReason: "超过退货期"})
	e.s.SetSeller(SellerPolicy{Decision: DecisionRefuse, RefuseReason: "不支持七天无理由"})
	byPolicy := e.seed(RefundSeed{Platform: PlatformTaobao, SubOrderID: "6600000000000000006", Status: tbWaitAgree})
	e.waitStatus(byPolicy.RefundID, tbRefused)

	for id, reason := range map[string]string{acted.RefundID: "商品已使用", seeded.RefundID: "超过退货期", byPolicy.RefundID: "不支持七天无理由"} {
		if !hasReason(id, reason) {
			t.Errorf("T8 %s: no seller message %q in %+v", id, reason, e.thread(id))
		}
	}
}
