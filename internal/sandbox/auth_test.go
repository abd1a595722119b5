package sandbox

import (
	"net/http"
	"strconv"
	"testing"
	"time"
)

func TestAuth(t *testing.T) {
	fixed := time.Date(2026, 5, 20, 7, 40, 0, 0, time.UTC)
	e := newEnv(t, func(c *Config) { c.Now = func() time.Time { return fixed } })
	ms := strconv.FormatInt(fixed.UnixMilli(), 10)
	sec := strconv.FormatInt(fixed.Unix(), 10)
	old := strconv.FormatInt(fixed.Add(-601*time.Second).UnixMilli(), 10)
	future := strconv.FormatInt(fixed.Add(601*time.Second).Unix(), 10)
	edge := strconv.FormatInt(fixed.Add(-599*time.Second).UnixMilli(), 10)
	const nonce = "nonce-str"
	sign := func(ts, n string) func(http.Header) {
		return func(h http.Header) { signedHeaders(h, testKey, testSecret, ts, n) }
	}
	tests := []struct {
		name    string
		headers func(http.Header)
		want    int
	}{
		{"valid ms", sign(ms, nonce), codeOK},
		{"valid seconds", sign(sec, nonce), codeOK},
		{"missing nonce signs with empty string", sign(ms, ""), codeOK},
		{"inside window", sign(edge, nonce), codeOK},
		{"no headers", func(http.Header) {}, codeAuthMissing},
		{"missing signature", func(h http.Header) { sign(ms, nonce)(h); h.Del(headerSignature) }, codeAuthMissing},
		{"missing user-id", func(h http.Header) { sign(ms, nonce)(h); h.Del(headerUserID) }, codeAuthMissing},
		{"missing timestamp", func(h http.Header) { sign(ms, nonce)(h); h.Del(headerTimestamp) }, codeAuthMissing},
		{"unknown key", func(h http.Header) { signedHeaders(h, "other-key", testSecret, ms, nonce) }, codeUnknownKey},
		{"wrong secret", func(h http.Header) { signedHeaders(h, testKey, "wrong", ms, nonce) }, codeBadSig},
		{"lowercase signature", func(h http.Header) {
			sign(ms, nonce)(h)
			h.Set(headerSignature, "47cb965c3ab252bdf9ed348a90c6b66d")
		}, codeBadSig},
		{"nonce changed after signing", func(h http.Header) { sign(ms, nonce)(h); h.Set(headerNonce, "other") }, codeBadSig},
		{"nonce dropped after signing", func(h http.Header) { sign(ms, nonce)(h); h.Del(headerNonce) }, codeBadSig},
		{"expired", sign(old, nonce), codeExpired},
		{"future", sign(future, nonce), codeExpired},
		{"unparsable timestamp", sign("yesterday", nonce), codeExpired},
		{"11-digit timestamp", sign(sec+"0", nonce), codeExpired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := e.s.Stats().AuthFailures
			r := e.callWith(http.MethodPost, paths.TaobaoRender, renderReq{SubOrderID: "1034499579120189839",
				RefundType: 1, GoodsStatus: 1}, tc.headers)
			if r.Code != tc.want {
				t.Fatalf("code %d (%s); want %d", r.Code, r.Msg, tc.want)
			}
			if r.HTTPStatus != http.StatusOK {
				t.Errorf("HTTP %d; want 200", r.HTTPStatus)
			}
			after := e.s.Stats().AuthFailures
			if wantFail := tc.want != codeOK; (after == before+1) != wantFail {
				t.Errorf("auth_failures %d -> %d; failure expected %v", before, after, wantFail)
			}
		})
	}
}

// TestSignatureVector pins the synthetic vector of reference §2.2 end to end.
func TestSignatureVector(t *testing.T) {
	ts := "1715669977082"
	fixed := time.UnixMilli(1715669977082)
	e := newEnv(t, func(c *Config) { c.Now = func() time.Time { return fixed } })
	r := e.callWith(http.MethodGet, paths.AlibabaLogisticsCompanies, nil, func(h http.Header) {
		h.Set(headerAccessKey, testKey)
		h.Set(headerTimestamp, ts)
		h.Set(headerNonce, "nonce-str")
		h.Set(headerUserID, "2100007341207")
		h.Set(headerSignature, "47CB965C3AB252BDF9ED348A90C6B66D")
	})
	if r.Code != codeOK {
		t.Fatalf("documented vector: code %d (%s); want 200", r.Code, r.Msg)
	}
}
