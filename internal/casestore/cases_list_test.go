package casestore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// seedListed writes n cases straight into the table with few distinct
// times and states, so that every order has long runs of ties: case i is
// taobao (odd: 1688), order "ord-<i>", sub-order "sub-<i>", refund
// "rf-<i>" for even i, opened by "cmd-<i>", in one of three states,
// created at one of four and updated at one of five minutes, attention
// seller_refused on every seventh.
func seedListed(t *testing.T, s *Store, n int) {
	t.Helper()
	err := s.Update(context.Background(), func(tx *Tx) error {
		return seedListedIn(tx, n)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func seedListedIn(tx *Tx, n int) error {
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	states := []string{"waiting_seller", "succeeded", "needs_attention"}
	for i := 1; i <= n; i++ {
		plat, sub, refund, attn := "taobao", fmt.Sprintf("sub-%d", i), "", ""
		if i%2 == 1 {
			plat, sub = "1688", ""
		} else {
			refund = fmt.Sprintf("rf-%d", i)
		}
		if i%7 == 0 {
			attn = "seller_refused"
		}
		_, err := tx.tx.ExecContext(context.Background(), `INSERT INTO cases (id, platform, order_id, sub_order_id, refund_id, state, attention_code, opened_by, created_at, updated_at, duplicate_of)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, i, plat, fmt.Sprintf("ord-%d", i), sub, refund, states[i%3], attn,
			fmt.Sprintf("cmd-%d", i), base.Add(time.Duration(i%4)*time.Hour).UnixMilli(), base.Add(time.Duration(i%5)*time.Minute).UnixMilli(), i)
		if err != nil {
			return err
		}
	}
	return nil
}

func caseIDs(cs []Case) []int64 {
	out := make([]int64, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

// TestListCasesSortedPages: under each order, both directions, pages of 7
// through cases with long runs of equal keys return every matching case
// exactly once and in the order's sequence (each page's keys follow the
// last's); EachCase reads the same sequence whole.
func TestListCasesSortedPages(t *testing.T) { eachBackend(t, testListCasesSortedPages) }

func testListCasesSortedPages(t *testing.T, be backend) {
	s := openTest(t, be.Fresh(t))
	ctx := context.Background()
	const n = 200
	seedListed(t, s, n)
	less := func(sort CaseSort, a, b Case) int {
		switch sort {
		case SortUpdated:
			if c := a.UpdatedAt.Compare(b.UpdatedAt); c != 0 {
				return c
			}
		case SortCreated:
			if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
				return c
			}
		case SortState:
			if c := strings.Compare(a.State, b.State); c != 0 {
				return c
			}
			if c := a.UpdatedAt.Compare(b.UpdatedAt); c != 0 {
				return c
			}
		}
		return int(a.ID - b.ID)
	}
	for _, filter := range []CaseFilter{{}, {Platform: "taobao"}, {States: []string{"needs_attention"}}, {AnyAttention: true},
		{OpenOnly: true}, {Attention: []string{"seller_refused"}}} {
		all, err := s.ListCases(ctx, CaseFilter{Platform: filter.Platform, States: filter.States, AnyAttention: filter.AnyAttention,
			OpenOnly: filter.OpenOnly, Attention: filter.Attention, Limit: MaxListLimit})
		if err != nil || len(all) == 0 {
			t.Fatalf("ListCases(%+v) = %d, %v", filter, len(all), err)
		}
		for _, sort := range CaseSorts() {
			for _, desc := range []bool{false, true} {
				want := slices.Clone(all)
				slices.SortFunc(want, func(a, b Case) int {
					if desc {
						return less(sort, b, a)
					}
					return less(sort, a, b)
				})
				f := filter
				f.Sort, f.Desc, f.Limit = sort, desc, 7
				var got []Case
				for pages := 0; ; pages++ {
					page, more, err := s.ListCasesPage(ctx, f)
					if err != nil {
						t.Fatalf("ListCasesPage(%+v): %v", f, err)
					}
					got = append(got, page...)
					if !more {
						break
					}
					if pages > n {
						t.Fatalf("%+v: paging does not end", f)
					}
					// The cursor goes through its text form, as a client carries it.
					cur, err := ParseCaseCursor(f.CursorAfter(page[len(page)-1]).String())
					if err != nil {
						t.Fatalf("ParseCaseCursor: %v", err)
					}
					f.After = &cur
				}
				if fmt.Sprint(caseIDs(got)) != fmt.Sprint(caseIDs(want)) {
					t.Errorf("filter %+v sort %s desc %v: pages of 7 = %v; want %v", filter, sort, desc, caseIDs(got), caseIDs(want))
				}
				f.After, f.Limit = nil, 0
				var each []Case
				if err := s.EachCase(ctx, f, func(c Case) error { each = append(each, c); return nil }); err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(caseIDs(each)) != fmt.Sprint(caseIDs(want)) {
					t.Errorf("filter %+v sort %s desc %v: EachCase = %d cases; want the %d in order", filter, sort, desc, len(each), len(want))
				}
			}
		}
	}
	// refundctl pages a state's cases by the last id listed (AfterID),
	// in either order; PostgreSQL seeks it in (state, id) (listQuery).
	stuck := CaseFilter{States: []string{"needs_attention"}, Limit: MaxListLimit}
	all, err := s.ListCases(ctx, stuck)
	if err != nil || len(all) < 3 {
		t.Fatalf("ListCases(%+v) = %d, %v", stuck, len(all), err)
	}
	mid := all[len(all)/2].ID
	for _, desc := range []bool{false, true} {
		f := stuck
		f.AfterID, f.Desc = mid, desc
		got, err := s.ListCases(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		want := slices.Clone(all[len(all)/2+1:])
		if desc {
			slices.Reverse(want)
		}
		if fmt.Sprint(caseIDs(got)) != fmt.Sprint(caseIDs(want)) {
			t.Errorf("state filter after id %d, desc %v: %v; want %v", mid, desc, caseIDs(got), caseIDs(want))
		}
	}

	// A cursor from another order is refused, not misread.
	cur := CaseFilter{Sort: SortUpdated}.CursorAfter(all1(t, s))
	if _, err := s.ListCases(ctx, CaseFilter{Sort: SortCreated, After: &cur}); err == nil {
		t.Error("ListCases with an updated-order cursor under the created order: no error")
	}
	for _, bad := range []string{"", "x", "aWQuYS4x", CaseCursor{Sort: "nope"}.String()} {
		if _, err := ParseCaseCursor(bad); err == nil {
			t.Errorf("ParseCaseCursor(%q): no error", bad)
		}
	}
}

func all1(t *testing.T, s *Store) Case {
	t.Helper()
	cs, err := s.ListCases(context.Background(), CaseFilter{Limit: 1})
	if err != nil || len(cs) != 1 {
		t.Fatalf("ListCases: %d, %v", len(cs), err)
	}
	return cs[0]
}

// TestListCasesFilters: each filter alone keeps exactly the cases it names.
func TestListCasesFilters(t *testing.T) { eachBackend(t, testListCasesFilters) }

func testListCasesFilters(t *testing.T, be backend) {
	s := openTest(t, be.Fresh(t))
	ctx := context.Background()
	const n = 60
	seedListed(t, s, n)
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	want := func(keep func(i int) bool) []int64 {
		var out []int64
		for i := 1; i <= n; i++ {
			if keep(i) {
				out = append(out, int64(i))
			}
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    CaseFilter
		want []int64
	}{
		{"platform", CaseFilter{Platform: "1688"}, want(func(i int) bool { return i%2 == 1 })},
		{"state", CaseFilter{States: []string{"succeeded"}}, want(func(i int) bool { return i%3 == 1 })},
		{"open", CaseFilter{OpenOnly: true}, want(func(i int) bool { return i%3 != 1 })},
		{"attention code", CaseFilter{Attention: []string{"seller_refused"}}, want(func(i int) bool { return i%7 == 0 })},
		{"any attention", CaseFilter{AnyAttention: true}, want(func(i int) bool { return i%7 == 0 })},
		{"updated before", CaseFilter{UpdatedBefore: base.Add(2 * time.Minute)}, want(func(i int) bool { return i%5 < 2 })},
		{"created between", CaseFilter{CreatedAfter: base.Add(30 * time.Minute), CreatedBefore: base.Add(150 * time.Minute)},
			want(func(i int) bool { return i%4 == 1 || i%4 == 2 })},
		{"order prefix", CaseFilter{Text: "ord-4"}, want(func(i int) bool { return i == 4 || (i >= 40 && i < 50) })},
		{"exact order", CaseFilter{Text: "ord-59"}, []int64{59}},
		{"exact sub-order", CaseFilter{Text: "sub-58"}, []int64{58}},
		{"refund prefix", CaseFilter{Text: "rf-5"}, []int64{50, 52, 54, 56, 58}},
		{"command", CaseFilter{Text: "cmd-33"}, []int64{33}},
		{"text or case", CaseFilter{Text: "cmd-33", TextCaseID: 12}, []int64{12, 33}},
		{"nothing", CaseFilter{Text: "zzz"}, nil},
		{"text and platform", CaseFilter{Text: "ord-1", Platform: "taobao"}, want(func(i int) bool {
			return i%2 == 0 && (i == 1 || (i >= 10 && i < 20))
		})},
		// One state with other filters ahead of and after it in the query
		// (PostgreSQL reads one state in id order through a range).
		{"platform and state", CaseFilter{Platform: "taobao", States: []string{"succeeded"}}, want(func(i int) bool { return i%2 == 0 && i%3 == 1 })},
		{"platform, state, text and an id", CaseFilter{Platform: "1688", States: []string{"waiting_seller"}, Text: "ord-", AfterID: 20},
			want(func(i int) bool { return i%2 == 1 && i%3 == 0 && i > 20 })},
		{"state, newest first", CaseFilter{States: []string{"needs_attention"}, Desc: true, UpdatedBefore: base.Add(3 * time.Minute)},
			func() []int64 {
				w := want(func(i int) bool { return i%3 == 2 && i%5 < 3 })
				slices.Reverse(w)
				return w
			}()},
	} {
		got, err := s.ListCases(ctx, tc.f)
		if err != nil {
			t.Fatalf("%s: ListCases(%+v): %v", tc.name, tc.f, err)
		}
		if fmt.Sprint(caseIDs(got)) != fmt.Sprint(tc.want) {
			t.Errorf("%s: ListCases(%+v) = %v; want %v", tc.name, tc.f, caseIDs(got), tc.want)
		}
	}
}

func TestPrefixEnd(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"abc", "abd"}, {"12", "13"}, {"a\U0010FFFF", "b"}, {"x\uD7FF", "x\uE000"}, {"订单", "订卖"},
	} {
		if got := prefixEnd(tc.in); got != tc.want {
			t.Errorf("prefixEnd(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}
