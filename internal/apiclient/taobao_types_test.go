package apiclient

import (
	"testing"

	"github.com/refundhub/refundhub/internal/platform"
)

// TestListRefundsResponseTotalPresence: a page without total (or with null)
// must not read as "total 0": a walker would take it as proof that there
// are no more refunds.
func TestListRefundsResponseTotalPresence(t *testing.T) {
	for _, tt := range []struct {
		body     string
		hasTotal bool
		total    int
	}{
		{`{"pageNo":1,"pageSize":50,"list":[]}`, false, 0},
		{`{"total":null,"list":[]}`, false, 0},
		{`{"total":0,"list":[]}`, true, 0},
		{`{"total":7,"list":[]}`, true, 7},
	} {
		r, err := decodeListPage([]byte(tt.body), platform.Default().Taobao.List)
		if err != nil {
			t.Fatalf("%s: %v", tt.body, err)
		}
		if r.HasTotal != tt.hasTotal || r.Total != tt.total {
			t.Errorf("%s: HasTotal %v Total %d; want %v %d", tt.body, r.HasTotal, r.Total, tt.hasTotal, tt.total)
		}
	}
}
