package apiclient

import "testing"

func TestPathsFromLookup(t *testing.T) {
	env := map[string]string{"UPSTREAM_PATH_TAOBAO_RETURN_LOGISTICS_SUBMIT": "/x/submit"}
	p, err := PathsFromLookup(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if p.TaobaoReturnLogisticsSubmit != "/x/submit" {
		t.Errorf("TaobaoReturnLogisticsSubmit = %q; want /x/submit", p.TaobaoReturnLogisticsSubmit)
	}
	if p.TaobaoRender != DefaultPaths().TaobaoRender {
		t.Errorf("TaobaoRender changed to %q", p.TaobaoRender)
	}
	env["UPSTREAM_PATH_TAOBAO_QUERY"] = "no-slash"
	if _, err := PathsFromLookup(func(k string) string { return env[k] }); err == nil {
		t.Error("PathsFromLookup accepted a path without a leading slash")
	}
	if err := DefaultPaths().Validate(); err != nil {
		t.Errorf("DefaultPaths().Validate() = %v", err)
	}
	if got := Fill(DefaultPaths().TaobaoCancel, "a/b"); got != "/v2/taobao/order/refund/cancel/a%2Fb" {
		t.Errorf("Fill = %q", got)
	}
	for name := range DefaultPaths().ByName() {
		var q Paths
		if err := q.Set(name, "/p"); err != nil {
			t.Errorf("Set(%q) = %v", name, err)
		}
	}
	if err := (&Paths{}).Set("Nope", "/p"); err == nil {
		t.Error("Set(Nope) succeeded")
	}
}
