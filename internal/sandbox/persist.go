package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/refundhub/refundhub/internal/platform"
)

// The sandbox keeps its orders and refunds in memory. With Config.StateFile
// it also keeps them in a file, so that a developer's stack restarted in the
// middle of a case finds the refund it left there (without it, the worker's
// next check of an open case finds no refund and parks it refund_missing):
// the file is read once by New and written, whole and atomically, shortly
// after each change and when Run ends. What is not kept: the push log and
// its queue (GET /_sandbox/callbacks starts empty; the worker's own checks
// find what an unsent callback would have told it), the scheduled seller
// moves (planned again on load, each a full delay from then), and faults
// and the seller policy, which are configuration.

// stateVersion is the state file's format; a file of another version is
// refused rather than read wrong.
const stateVersion = 1

// SaveInterval is the most often the state file is written while changes
// come in: a change is on disk within about this long, and a burst of
// calls costs one write.
const SaveInterval = 250 * time.Millisecond

// stateDoc is the state file's document.
type stateDoc struct {
	Version  int       `json:"version"`
	SavedAt  time.Time `json:"saved_at"`
	Orders   []*Order  `json:"orders"`
	Refunds  []*Refund `json:"refunds"`
	Vouchers []string  `json:"vouchers"`
	// Stats are the counters but the callbacks' (the push log is not kept).
	Stats Stats `json:"stats"`
}

// markChanged records that the state changed since the last save: the
// saver writes the file within SaveInterval.
func (s *Sandbox) markChanged() {
	if s.cfg.StateFile == "" {
		return
	}
	s.changed.Store(true)
	select {
	case s.saveWake <- struct{}{}:
	default:
	}
}

// stateLocked is the document of the sandbox's state now. Callers hold s.mu;
// the document shares nothing mutable the caller keeps after unlocking only
// because it is marshalled before s.mu is released (saveState).
func (s *Sandbox) stateLocked() stateDoc {
	doc := stateDoc{Version: stateVersion, SavedAt: s.now().UTC(), Orders: make([]*Order, 0, len(s.orders)),
		Refunds: make([]*Refund, 0, len(s.refunds)), Vouchers: make([]string, 0, len(s.vouchers))}
	for _, o := range s.orders {
		doc.Orders = append(doc.Orders, o)
	}
	for _, r := range s.refunds {
		doc.Refunds = append(doc.Refunds, r)
	}
	for v := range s.vouchers {
		doc.Vouchers = append(doc.Vouchers, v)
	}
	// A stable order: the file of an unchanged state reads the same.
	sort.Slice(doc.Orders, func(i, j int) bool {
		return orderKey(doc.Orders[i].Platform, doc.Orders[i].OrderID) < orderKey(doc.Orders[j].Platform, doc.Orders[j].OrderID)
	})
	sort.Slice(doc.Refunds, func(i, j int) bool { return doc.Refunds[i].RefundID < doc.Refunds[j].RefundID })
	sort.Strings(doc.Vouchers)
	doc.Stats = s.stats
	doc.Stats.Callbacks = CallbackStats{}
	return doc
}

// saveState writes the state file, whole: to a temporary file beside it,
// synced, then renamed over it, so a crash leaves the old file or the new
// one, never half of one.
// A failed save leaves the state marked changed, so the next one writes it.
func (s *Sandbox) saveState() (err error) {
	s.changed.Store(false)
	defer func() {
		if err != nil {
			s.changed.Store(true)
		}
	}()
	s.mu.Lock()
	b, err := json.Marshal(s.stateLocked())
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("sandbox state: %w", err)
	}
	path := s.cfg.StateFile
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("sandbox state: write %s: %w", path, err)
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("sandbox state: write %s: %w", path, err)
	}
	return nil
}

// saveRetry is how long the saver waits to try a failed save again when
// nothing changes meanwhile.
const saveRetry = 5 * time.Second

// runSaver writes the state file after changes, at most every
// SaveInterval, and once more when ctx ends, until then.
func (s *Sandbox) runSaver(ctx context.Context) {
	if s.cfg.StateFile == "" {
		return
	}
	var retry <-chan time.Time
	save := func() {
		retry = nil
		if err := s.saveState(); err != nil {
			s.log.Error("sandbox: state not saved; tried again in "+saveRetry.String()+" or at the next change", "err", err)
			retry = time.After(saveRetry)
		}
	}
	for {
		select {
		case <-ctx.Done():
			save()
			return
		case <-s.saveWake:
		case <-retry:
		}
		if !s.changed.Load() {
			continue
		}
		save()
		select {
		case <-ctx.Done():
			save()
			return
		case <-time.After(SaveInterval):
		}
	}
}

// loadState reads the state file into a new sandbox (New, before anything
// runs). A missing file is an empty sandbox; a file that cannot be read or
// does not hold a consistent state is an error naming it: the developer
// decides whether to remove it.
func (s *Sandbox) loadState() (loaded bool, err error) {
	b, err := os.ReadFile(s.cfg.StateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("sandbox state: %w", err)
	}
	if err := s.restore(b); err != nil {
		return false, fmt.Errorf("sandbox state %s: %w (remove the file to start empty)", s.cfg.StateFile, err)
	}
	return true, nil
}

// restore replaces the sandbox's orders, refunds, vouchers and counters
// with those of the state document b, checking what the handlers rely on:
// known platforms and phases, ids of the stored forms, each refund's order,
// and at most one open refund per sub-order (Taobao) or order (1688).
// Statuses are renamed under the current profile; the seller's moves on open
// refunds are planned again. On an error nothing changes.
func (s *Sandbox) restore(b []byte) error {
	var doc stateDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("not a sandbox state document: %w", err)
	}
	if doc.Version != stateVersion {
		return fmt.Errorf("version %d: this sandbox reads version %d", doc.Version, stateVersion)
	}
	orders, subOrders := map[string]*Order{}, map[string]*Order{}
	for i, o := range doc.Orders {
		if o == nil {
			return fmt.Errorf("orders[%d] is null", i)
		}
		if err := checkOrder(o); err != nil {
			return fmt.Errorf("orders[%d]: %w", i, err)
		}
		key := orderKey(o.Platform, o.OrderID)
		if orders[key] != nil {
			return fmt.Errorf("orders[%d]: order %s %s is repeated", i, o.Platform, o.OrderID)
		}
		if o.Seller != nil {
			p, err := normalizeSeller(*o.Seller)
			if err != nil {
				return fmt.Errorf("orders[%d]: seller: %w", i, err)
			}
			o.Seller = &p
		}
		for _, so := range o.SubOrders {
			if o.Platform == PlatformTaobao {
				if subOrders[so.SubOrderID] != nil {
					return fmt.Errorf("orders[%d]: sub-order %q belongs to another order", i, so.SubOrderID)
				}
				subOrders[so.SubOrderID] = o
			}
		}
		orders[key] = o
	}
	refunds, open := map[string]*Refund{}, map[string]string{}
	for i, r := range doc.Refunds {
		if r == nil {
			return fmt.Errorf("refunds[%d] is null", i)
		}
		if !validID(r.RefundID) || refunds[r.RefundID] != nil {
			return fmt.Errorf("refunds[%d]: refund id %q invalid or repeated", i, r.RefundID)
		}
		o := orders[orderKey(r.Platform, r.OrderID)]
		if o == nil {
			return fmt.Errorf("refunds[%d]: refund %s: no %s order %q", i, r.RefundID, r.Platform, r.OrderID)
		}
		if r.Platform == PlatformTaobao && o.subOrder(r.SubOrderID) == nil {
			return fmt.Errorf("refunds[%d]: refund %s: sub-order %q is not one of order %s", i, r.RefundID, r.SubOrderID, r.OrderID)
		}
		if !slices.Contains(platform.Phases(), r.Phase) {
			return fmt.Errorf("refunds[%d]: refund %s: phase %q", i, r.RefundID, r.Phase)
		}
		r.Status = s.wireStatus(r.Platform, r.Phase)
		if !r.terminal() {
			if other, ok := open[r.openKey()]; ok {
				return fmt.Errorf("refunds[%d]: refunds %s and %s are both open on %s", i, other, r.RefundID, r.openKey())
			}
			open[r.openKey()] = r.RefundID
		}
		refunds[r.RefundID] = r
	}
	// Each order lists its refunds in the order they were made, as the
	// handlers keep it (T1's list by order, an order event's check for an
	// open refund): rebuilt from the refunds, not trusted as stored.
	byAge := slices.Clone(doc.Refunds)
	slices.SortStableFunc(byAge, func(a, b *Refund) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.RefundID, b.RefundID)
	})
	for _, o := range orders {
		o.RefundIDs = nil
	}
	for _, r := range byAge {
		o := orders[orderKey(r.Platform, r.OrderID)]
		o.RefundIDs = append(o.RefundIDs, r.RefundID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resetLocked()
	s.orders, s.subOrders, s.refunds, s.openRefunds = orders, subOrders, refunds, open
	for _, v := range doc.Vouchers {
		s.vouchers[v] = struct{}{}
	}
	st := doc.Stats
	for _, m := range []*map[string]int64{&st.APICalls, &st.RefundSubmissions, &st.ReturnLogisticsSubmissions, &st.Cancels, &st.Modifications} {
		if *m == nil {
			*m = map[string]int64{}
		}
	}
	st.Callbacks = CallbackStats{}
	s.stats = st
	for _, r := range doc.Refunds {
		if !r.terminal() {
			s.scheduleSellerLocked(r)
		}
	}
	return nil
}
