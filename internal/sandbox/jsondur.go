package sandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// duration marshals a time.Duration as a Go duration string ("2s") and
// accepts that string or a number of nanoseconds.
type duration time.Duration

func (d duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

func (d *duration) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*d = 0
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if s == "" {
			*d = 0
			return nil
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: want a Go duration such as \"2s\"", s)
		}
		*d = duration(v)
		return nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("duration: want a string such as \"2s\" or integer nanoseconds")
	}
	*d = duration(n)
	return nil
}

type sellerPolicyJSON struct {
	Decision     string   `json:"decision"`
	RefuseReason string   `json:"refuse_reason"`
	DecideAfter  duration `json:"decide_after"`
	ReceiveAfter duration `json:"receive_after"`
}

// MarshalJSON writes the delays as Go duration strings.
func (p SellerPolicy) MarshalJSON() ([]byte, error) {
	return json.Marshal(sellerPolicyJSON{p.Decision, p.RefuseReason, duration(p.DecideAfter), duration(p.ReceiveAfter)})
}

// UnmarshalJSON reads the delays as Go duration strings (or nanoseconds).
func (p *SellerPolicy) UnmarshalJSON(b []byte) error {
	var j sellerPolicyJSON
	if err := strictUnmarshal(b, &j); err != nil {
		return err
	}
	*p = SellerPolicy{j.Decision, j.RefuseReason, time.Duration(j.DecideAfter), time.Duration(j.ReceiveAfter)}
	return nil
}

type faultsJSON struct {
	LatencyMin        duration      `json:"latency_min"`
	LatencyMax        duration      `json:"latency_max"`
	ErrorRate         float64       `json:"error_rate"`
	ErrorKinds        []ErrorKind   `json:"error_kinds"`
	TimeoutAfter      duration      `json:"timeout_after"`
	Endpoints         []string      `json:"endpoints"`
	ForceErrors       []ForcedError `json:"force_errors"`
	DuplicatePushRate float64       `json:"duplicate_push_rate"`
	ReorderPushRate   float64       `json:"reorder_push_rate"`
	DropPushRate      float64       `json:"drop_push_rate"`
	ListOmitTotal     bool          `json:"taobao_list_omit_total"`
	ListMaxPageSize   int           `json:"taobao_list_max_page_size"`
	RateQuota         float64       `json:"rate_quota"`
	RateQuotaBurst    int           `json:"rate_quota_burst"`
}

// MarshalJSON writes durations as Go duration strings.
func (f Faults) MarshalJSON() ([]byte, error) {
	return json.Marshal(faultsJSON{
		LatencyMin: duration(f.LatencyMin), LatencyMax: duration(f.LatencyMax), ErrorRate: f.ErrorRate,
		ErrorKinds: f.ErrorKinds, TimeoutAfter: duration(f.TimeoutAfter), Endpoints: f.Endpoints,
		ForceErrors: f.ForceErrors, DuplicatePushRate: f.DuplicatePushRate, ReorderPushRate: f.ReorderPushRate,
		DropPushRate: f.DropPushRate, ListOmitTotal: f.TaobaoListOmitTotal, ListMaxPageSize: f.TaobaoListMaxPageSize,
		RateQuota: f.RateQuota, RateQuotaBurst: f.RateQuotaBurst,
	})
}

// UnmarshalJSON reads durations as Go duration strings (or nanoseconds).
func (f *Faults) UnmarshalJSON(b []byte) error {
	var j faultsJSON
	if err := strictUnmarshal(b, &j); err != nil {
		return err
	}
	*f = Faults{
		LatencyMin: time.Duration(j.LatencyMin), LatencyMax: time.Duration(j.LatencyMax), ErrorRate: j.ErrorRate,
		ErrorKinds: j.ErrorKinds, TimeoutAfter: time.Duration(j.TimeoutAfter), Endpoints: j.Endpoints,
		ForceErrors: j.ForceErrors, DuplicatePushRate: j.DuplicatePushRate, ReorderPushRate: j.ReorderPushRate,
		DropPushRate: j.DropPushRate, TaobaoListOmitTotal: j.ListOmitTotal, TaobaoListMaxPageSize: j.ListMaxPageSize,
		RateQuota: j.RateQuota, RateQuotaBurst: j.RateQuotaBurst,
	}
	return nil
}

// strictUnmarshal rejects unknown fields, so a misspelt fault or policy field
// is an error instead of silently doing nothing.
func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
