package casecsv

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
)

// TestWriter: the header first (also for no cases), then one row per case
// whose commas, quotes and line breaks survive a CSV reader; the request
// as filed in the batch columns, max for a Taobao amount of 0, lists
// joined with ';'.
func TestWriter(t *testing.T) {
	at := time.Date(2026, 12, 2, 14, 0, 0, 5e6, time.FixedZone("CST", 8*3600))
	cases := []casestore.Case{
		{ID: 7, Platform: casestore.PlatformTaobao, OrderID: "1001", SubOrderID: "1002", State: "needs_attention", AttentionCode: "seller_refused",
			OpenedBy: "cmd-1", CreatedAt: at, UpdatedAt: at.Add(time.Second),
			Request: json.RawMessage(`{"goodsStatus":"1","reasonId":1004,"description":"late, \"very\"\nlate","vouchers":["a.jpg","b.jpg"]}`)},
		{ID: 8, Platform: casestore.Platform1688, OrderID: "2001", SubOrderID: "old", State: "waiting_seller", CreatedAt: at, UpdatedAt: at},
	}
	var b bytes.Buffer
	w := NewWriter(&b)
	for _, c := range cases {
		if err := w.Write(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(b.String())).ReadAll()
	if err != nil {
		t.Fatalf("read back: %v\n%s", err, b.String())
	}
	if len(recs) != 3 || !slices.Equal(recs[0], Header()) {
		t.Fatalf("export = %q; want the header and two rows", recs)
	}
	row := func(r []string) map[string]string {
		m := map[string]string{}
		for i, col := range recs[0] {
			m[col] = r[i]
		}
		return m
	}
	first, second := row(recs[1]), row(recs[2])
	for col, want := range map[string]string{"platform": "taobao", "order": "1001", "sub-order": "1002", "type": "refund", "reason-id": "1004",
		"amount": "max", "description": "late, \"very\"\nlate", "voucher": "a.jpg;b.jpg", "id": "cmd-1", "case-id": "7",
		"state": "needs_attention", "attention": "seller_refused", "created": "2026-12-02T06:00:00.005Z", "updated": "2026-12-02T06:00:01.005Z"} {
		if first[col] != want {
			t.Errorf("first row %s = %q; want %q", col, first[col], want)
		}
	}
	if second["sub-order"] != "" || second["type"] != "" || second["case-id"] != "8" {
		t.Errorf("1688 case without a request: %q; want no sub-order, no request columns, case-id 8", recs[2])
	}
	if !strings.Contains(b.String(), "\"late, \"\"very\"\"\nlate\"") {
		t.Errorf("description not quoted as CSV: %s", b.String())
	}

	b.Reset()
	if err := NewWriter(&b).Flush(); err != nil || b.String() != strings.Join(Header(), ",")+"\n" {
		t.Errorf("empty export = %q, %v; want the header alone", b.String(), err)
	}
}
