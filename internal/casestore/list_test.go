package casestore

import (
	"context"
	"fmt"
	"testing"
)

// TestListCasesPage: pages of at most MaxListLimit in id order, each saying
// whether more cases match after it; AfterID pages on.
func TestListCasesPage(t *testing.T) { eachBackend(t, testListCasesPage) }

func testListCasesPage(t *testing.T, be backend) {
	s := openTest(t, be.Fresh(t))
	ctx := context.Background()
	const total = MaxListLimit + 5
	err := s.Update(ctx, func(tx *Tx) error {
		for i := range total {
			if _, err := tx.CreateCase(ctx, NewCase{Platform: PlatformTaobao, OrderID: "1", SubOrderID: fmt.Sprint(1000 + i),
				State: "requested", OpenedBy: fmt.Sprintf("cmd-%06d", i)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		f        CaseFilter
		n        int
		first    int64
		more     bool
		openedBy string
	}{
		{CaseFilter{Limit: 10}, 10, 1, true, "cmd-000000"},
		{CaseFilter{Limit: 5000}, MaxListLimit, 1, true, "cmd-000000"},
		{CaseFilter{Limit: MaxListLimit, AfterID: MaxListLimit}, 5, MaxListLimit + 1, false, "cmd-001000"},
		{CaseFilter{Limit: 5, AfterID: total - 5}, 5, total - 4, false, "cmd-001000"},
		{CaseFilter{Limit: 4, AfterID: total - 5}, 4, total - 4, true, "cmd-001000"},
		{CaseFilter{AfterID: total}, 0, 0, false, ""},
	} {
		cases, more, err := s.ListCasesPage(ctx, tt.f)
		if err != nil {
			t.Fatalf("ListCasesPage(%+v): %v", tt.f, err)
		}
		if len(cases) != tt.n || more != tt.more || (tt.n > 0 && (cases[0].ID != tt.first || cases[0].OpenedBy != tt.openedBy)) {
			first, by := int64(0), ""
			if len(cases) > 0 {
				first, by = cases[0].ID, cases[0].OpenedBy
			}
			t.Errorf("ListCasesPage(%+v) = %d cases from %d (opened by %q), more %v; want %d from %d (%q), more %v",
				tt.f, len(cases), first, by, more, tt.n, tt.first, tt.openedBy, tt.more)
		}
		all, err := s.ListCases(ctx, tt.f)
		if err != nil || len(all) != len(cases) {
			t.Errorf("ListCases(%+v) = %d cases, %v; want the page's %d", tt.f, len(all), err, len(cases))
		}
	}
}
