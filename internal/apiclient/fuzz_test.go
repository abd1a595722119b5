package apiclient

import (
	"encoding/json"
	"testing"

	"github.com/refundhub/refundhub/internal/platform"
)

// FuzzDecodeEnvelope feeds arbitrary bodies through the envelope and data
// decoding the client applies to every 2xx response. It must never panic, and
// a decoded envelope must be re-decodable from its own fields.
func FuzzDecodeEnvelope(f *testing.F) {
	seeds := []string{
		`{"code":200,"data":{"currency":"CNY","distributorId":"1231294146025","messageSubmitSuccess":true},"developId":"1021090911993463110","msg":"成功","requestId":"5b950f5f7b064dc889c1a878b5c16234"}`,
		`{"requestId":"r","code":"200","developId":1021090911993463110,"data":{"refundOrderAggregate":{"refundOrder":{"refundStatus":1,"refundFee":"12.5"},"logistics":{"receiverAddress":"x","logisticsCompany":{"logisticCompanyCode":"SF"}}}}}`,
		`{"code":null,"msg":null,"data":null}`,
		`{"code":4013,"msg":"signature mismatch"}`,
		`{"code":200,"data":[{"companyNo":"SF","id":"3"}]}`,
		`{"code":200,"data":{"success":false,"errorCode":"E1","errorInfo":"bad"}}`,
		`{"code":1e3}`, `{"code":"x"}`, `[]`, `"str"`, ``, `{`, `{"code":99999999999999999999}`,
		`{"code":200,"data":{"refundOrderAggregate":{"refundOrder":{"refundFee":1e400}}}}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	prof := platform.Default()
	f.Fuzz(func(t *testing.T, body []byte) {
		env, err := decodeEnvelope(body)
		if err != nil {
			return
		}
		var q QueryRefundResponse
		if decodeData(env.Data, &q) == nil {
			raw := string(q.RefundOrderAggregate.RefundOrder.RefundStatus)
			if ph, ok := prof.TaobaoPhase(raw); ok != (ph != "") {
				t.Errorf("refundStatus %q: phase %q, known %v", raw, ph, ok)
			}
		}
		var info RefundInfo
		_ = decodeData(env.Data, &info)
		_, _ = decodeListPage(env.Data, prof.Taobao.List)
		var companies companyList
		_ = decodeData(env.Data, &companies)
		var ret GoodsReturnResponse
		_ = decodeData(env.Data, &ret)
		_ = explicitFalse(env.Data, "success")

		// Round trip: the decoded scalars must decode back to the same values.
		again, err := json.Marshal(map[string]any{"requestId": string(env.RequestID), "code": int(env.Code),
			"developId": string(env.DevelopID), "msg": string(env.Msg)})
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		env2, err := decodeEnvelope(again)
		if err != nil {
			t.Fatalf("re-decode %s: %v", again, err)
		}
		if env2.Code != env.Code || env2.RequestID != env.RequestID || env2.DevelopID != env.DevelopID || env2.Msg != env.Msg {
			t.Errorf("round trip changed the envelope: %+v -> %+v", env, env2)
		}
	})
}
