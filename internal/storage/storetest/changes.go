package storetest

import (
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// runChangeTests is the ChangeLog part of the suite.
func runChangeTests(t *testing.T, newStore func(t *testing.T) storage.Store) {
	t.Run("a_new_store_has_an_empty_change_log", func(t *testing.T) {
		s := newStore(t)
		if got := lastChange(t, s); got != 0 {
			t.Errorf("LastChange() on a new store = %d, want 0", got)
		}
		if got := changesAfter(t, s, 0); len(got) != 0 {
			t.Errorf("Changes(0) on a new store = %v, want none", entries(got))
		}
		if got := liveRevocations(t, s, base); len(got) != 0 {
			t.Errorf("LiveRevocations() on a new store = %v, want none", got)
		}
	})

	t.Run("rfc7009_2.2_revoke_token_appends_a_token_entry_that_expires_with_the_token", func(t *testing.T) {
		s := newStore(t)
		zone := time.FixedZone("UTC+1", 3600)
		now := base.Add(time.Minute + 123).In(zone)
		exp := base.Add(15*time.Minute + 456).In(zone)
		if err := s.RevokeToken(t.Context(), "jti-1", exp, now); err != nil {
			t.Fatalf("RevokeToken(jti-1) = %v", err)
		}
		got := changesAfter(t, s, 0)
		if len(got) != 1 {
			t.Fatalf("Changes(0) after one RevokeToken = %v, want one entry", entries(got))
		}
		c := got[0]
		if c.Kind != storage.ChangeToken || c.Subject != "jti-1" || c.Seq <= 0 {
			t.Errorf("entry = %+v, want a %q entry for jti-1 with a positive Seq", c, storage.ChangeToken)
		}
		assertUTC(t, "At", c.At, now)
		assertUTC(t, "ExpiresAt", c.ExpiresAt, exp)
		if last := lastChange(t, s); last != c.Seq {
			t.Errorf("LastChange() = %d, want the entry's Seq %d", last, c.Seq)
		}
	})

	t.Run("seq_strictly_increases_in_append_order", func(t *testing.T) {
		s := newStore(t)
		var want []string
		for i := range 12 {
			jti := fmt.Sprintf("jti-%02d", 11-i) // names not in Seq order
			revokeToken(t, s, jti, base.Add(time.Hour))
			want = append(want, jti)
			// LastChange follows every append.
			got := changesAfter(t, s, 0)
			if last := lastChange(t, s); last != got[len(got)-1].Seq {
				t.Errorf("LastChange() = %d after %d appends, want the newest Seq %d", last, i+1, got[len(got)-1].Seq)
			}
		}
		var got []string
		for _, c := range changesAfter(t, s, 0) { // changesAfter checks that Seq increases
			got = append(got, c.Subject)
		}
		if !slices.Equal(got, want) {
			t.Errorf("Changes(0) subjects = %v, want the append order %v", got, want)
		}
	})

	t.Run("changes_pages_after_a_seq_with_a_limit", func(t *testing.T) {
		s := newStore(t)
		for i := range 5 {
			revokeToken(t, s, fmt.Sprintf("t%d", i), base.Add(time.Hour))
		}
		all := changesAfter(t, s, 0)
		if len(all) != 5 {
			t.Fatalf("Changes(0) = %v, want 5 entries", entries(all))
		}
		seq := func(i int) int64 { return all[i].Seq }
		tests := []struct {
			after int64
			limit int
			want  []string
		}{
			{0, 2, []string{"t0", "t1"}},
			{seq(1), 2, []string{"t2", "t3"}},
			{seq(3), 2, []string{"t4"}},
			{seq(4), 2, []string{}},
			{0, 10, []string{"t0", "t1", "t2", "t3", "t4"}},
			{seq(2) + (seq(3)-seq(2))/2, 1, []string{"t3"}}, // after need not be an entry's Seq
			{seq(4) + 1000, 10, []string{}},
		}
		for _, tt := range tests {
			page, err := s.Changes(t.Context(), tt.after, tt.limit)
			if err != nil {
				t.Fatalf("Changes(%d, %d) = %v", tt.after, tt.limit, err)
			}
			got := []string{}
			for _, c := range page {
				got = append(got, c.Subject)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Changes(%d, %d) = %v, want %v", tt.after, tt.limit, got, tt.want)
			}
			for _, c := range page {
				if i := slices.IndexFunc(all, func(a storage.Change) bool { return a.Seq == c.Seq }); i < 0 || !reflect.DeepEqual(all[i], c) {
					t.Errorf("Changes(%d, %d) returned %+v, unlike Changes(0)", tt.after, tt.limit, c)
				}
			}
		}
	})

	t.Run("rfc7519_4.1.4_live_revocations_returns_only_unexpired_session_and_token_entries", func(t *testing.T) {
		s := newStore(t)
		now := base.Add(time.Hour)
		for _, tok := range []struct {
			jti string
			exp time.Time
		}{
			{"expired", now.Add(-time.Nanosecond)},
			{"expires-now", now}, // RFC 7519 §4.1.4: not accepted on or after exp
			{"live", now.Add(time.Nanosecond)},
			{"later", now.Add(time.Hour)},
		} {
			if err := s.RevokeToken(t.Context(), tok.jti, tok.exp, base); err != nil {
				t.Fatalf("RevokeToken(%s) = %v", tok.jti, err)
			}
		}
		u := newUser(t, "alice")
		mustCreateUser(t, s, u)
		sess := newSession(t, "s1", u, "web")
		sess.IdleExpiresAt = now.Add(time.Hour)
		mustCreateSession(t, s, sess, 0)
		mustRevoke(t, s, u, "s1", now)
		// Entries that are no revocations: a user change and a key change.
		mustUpdateUser(t, s, "alice", func(u *storage.User) error { u.Scopes = []string{"me", "users:read"}; return nil })
		mustCreateSigningKey(t, s, storage.SigningKey{ID: "k1", Algorithm: "EdDSA", Private: []byte("p"), CreatedAt: base})

		want := []string{storage.ChangeToken + ":live", storage.ChangeToken + ":later", storage.ChangeSession + ":s1"}
		if got := liveRevocations(t, s, now); !slices.Equal(got, want) {
			t.Errorf("LiveRevocations(%v) = %v, want %v in Seq order", now, got, want)
		}
		revs, err := s.LiveRevocations(t.Context(), now)
		if err != nil {
			t.Fatalf("LiveRevocations() = %v", err)
		}
		all := changesAfter(t, s, 0)
		for _, r := range revs {
			if i := slices.IndexFunc(all, func(a storage.Change) bool { return a.Seq == r.Seq }); i < 0 || !reflect.DeepEqual(all[i], r) {
				t.Errorf("LiveRevocations returned %+v, unlike Changes(0)", r)
			}
		}
	})

	t.Run("prune_changes_deletes_only_entries_that_expired_before", func(t *testing.T) {
		s := newStore(t)
		before := base.Add(time.Hour)
		for _, tok := range []struct {
			jti string
			exp time.Time
		}{
			{"long-gone", before.Add(-time.Hour)},
			{"just-before", before.Add(-time.Nanosecond)},
			{"just-after", before.Add(time.Nanosecond)},
			{"later", before.Add(time.Hour)},
		} {
			revokeToken(t, s, tok.jti, tok.exp)
		}
		if err := s.PruneChanges(t.Context(), before); err != nil {
			t.Fatalf("PruneChanges(%v) = %v", before, err)
		}
		var got []string
		for _, c := range changesAfter(t, s, 0) {
			got = append(got, c.Subject)
		}
		if want := []string{"just-after", "later"}; !slices.Equal(got, want) {
			t.Errorf("Changes(0) after PruneChanges(%v) = %v, want %v", before, got, want)
		}
	})

	t.Run("seq_keeps_growing_after_the_newest_entries_are_pruned", func(t *testing.T) {
		// A follower's cursor is the Seq it applied last: a Seq handed out
		// again after a prune would hide the new entry from it.
		s := newStore(t)
		revokeToken(t, s, "old-1", base.Add(time.Minute))
		revokeToken(t, s, "old-2", base.Add(time.Minute))
		cursor := lastChange(t, s)
		if err := s.PruneChanges(t.Context(), base.Add(time.Hour)); err != nil {
			t.Fatalf("PruneChanges() = %v", err)
		}
		if got := changesAfter(t, s, 0); len(got) != 0 {
			t.Fatalf("Changes(0) after pruning everything = %v, want none", entries(got))
		}
		revokeToken(t, s, "new", base.Add(2*time.Hour))
		got := changesAfter(t, s, cursor)
		if len(got) != 1 || got[0].Subject != "new" {
			t.Errorf("Changes(%d) after a prune and an append = %v, want the new entry above the old cursor", cursor, entries(got))
		}
	})

	t.Run("concurrent_appenders_are_seen_exactly_once_by_a_polling_reader", func(t *testing.T) {
		s := newStore(t)
		appendersAgainstAPollingReader(t, s, []storage.Store{s, s}, 20)
	})
}

// runChangeTwoInstanceTests is the part of the ChangeLog suite that needs
// two instances on one database.
func runChangeTwoInstanceTests(t *testing.T, newPair func(t *testing.T) (a, b storage.Store)) {
	t.Run("entries_appended_on_one_instance_are_read_in_order_on_the_other", func(t *testing.T) {
		a, b := newPair(t)
		u := newUser(t, "alice")
		mustCreateUser(t, a, u)
		mustCreateSession(t, a, newSession(t, "s1", u, "web"), 0)
		cursor := lastChange(t, b)
		var want []string
		for i := range 5 {
			jti := fmt.Sprintf("jti-%d", i)
			revokeToken(t, a, jti, base.Add(time.Hour))
			want = append(want, storage.ChangeToken+":"+jti)
		}
		mustRevoke(t, a, u, "s1", base.Add(time.Minute))
		want = append(want, storage.ChangeSession+":s1")

		onA, onB := changesAfter(t, a, cursor), changesAfter(t, b, cursor)
		if !reflect.DeepEqual(onB, onA) {
			t.Errorf("Changes(%d) on b = %+v, on a %+v; want the same", cursor, onB, onA)
		}
		got := []string{}
		for _, c := range onB {
			got = append(got, c.Kind+":"+c.Subject)
		}
		if !slices.Equal(got, want) {
			t.Errorf("Changes(%d) on b = %v, want a's appends in order %v", cursor, got, want)
		}
		if la, lb := lastChange(t, a), lastChange(t, b); la != lb || lb != onA[len(onA)-1].Seq {
			t.Errorf("LastChange() on a, b = %d, %d; want both the newest Seq %d", la, lb, onA[len(onA)-1].Seq)
		}
	})

	t.Run("concurrent_appenders_on_two_instances_are_seen_exactly_once_by_a_polling_reader", func(t *testing.T) {
		a, b := newPair(t)
		appendersAgainstAPollingReader(t, b, []storage.Store{a, b}, 20)
	})
}

// appendersAgainstAPollingReader has perStore goroutines on each of
// writers revoke tokens, all at once, while a reader follows the log as
// every process does, Changes(cursor) in a loop with a small limit. When
// the writers are done and a last read finds nothing new, the reader must
// have seen every entry exactly once: an entry that became visible below
// the cursor (a Seq taken before another's but committed after it) is one
// the reader skipped for good.
func appendersAgainstAPollingReader(t *testing.T, reader storage.Store, writers []storage.Store, perStore int) {
	t.Helper()
	cursor := lastChange(t, reader)
	n := perStore * len(writers)
	errs := make([]error, n)
	var done atomic.Bool
	release := make(chan struct{})
	var writing sync.WaitGroup
	for i := range n {
		writing.Go(func() {
			<-release
			errs[i] = writers[i%len(writers)].RevokeToken(t.Context(), fmt.Sprintf("jti-%03d", i), base.Add(time.Hour), base)
		})
	}
	var all sync.WaitGroup
	all.Go(func() {
		writing.Wait()
		done.Store(true)
	})
	close(release)

	seen := map[string]int{}
	var order []int64
	for {
		finished := done.Load() // read before the page: what it covers is committed
		page, err := reader.Changes(t.Context(), cursor, 7)
		if err != nil {
			t.Errorf("Changes(%d, 7) = %v", cursor, err)
			break
		}
		for _, c := range page {
			if c.Seq <= cursor {
				t.Errorf("Changes(%d, 7) returned Seq %d", cursor, c.Seq)
			}
			cursor = c.Seq
			order = append(order, c.Seq)
			seen[c.Subject]++
		}
		if finished && len(page) == 0 {
			break
		}
		if len(page) == 0 {
			runtime.Gosched()
		}
	}
	all.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("RevokeToken #%d (store %d) = %v", i, i%len(writers), err)
		}
	}
	var missed, twice []string
	for i := range n {
		jti := fmt.Sprintf("jti-%03d", i)
		switch seen[jti] {
		case 1:
		case 0:
			if errs[i] == nil {
				missed = append(missed, jti)
			}
		default:
			twice = append(twice, jti)
		}
	}
	if len(missed) > 0 || len(twice) > 0 {
		t.Errorf("a reader following Changes during %d concurrent appends missed %v and saw more than once %v (read Seqs %v)", n, missed, twice, order)
	}
	if got := len(changesAfter(t, reader, 0)); got < n {
		t.Errorf("the log holds %d entries after %d appends", got, n)
	}
}

func revokeToken(t *testing.T, s storage.Store, jti string, exp time.Time) {
	t.Helper()
	if err := s.RevokeToken(t.Context(), jti, exp, base); err != nil {
		t.Fatalf("RevokeToken(%s) = %v", jti, err)
	}
}

// liveRevocations returns LiveRevocations(now) as "kind:subject" names in
// Seq order, checking that order.
func liveRevocations(t *testing.T, s storage.Store, now time.Time) []string {
	t.Helper()
	revs, err := s.LiveRevocations(t.Context(), now)
	if err != nil {
		t.Fatalf("LiveRevocations(%v) = %v", now, err)
	}
	got := []string{}
	var last int64
	for _, c := range revs {
		if c.Seq <= last {
			t.Errorf("LiveRevocations(%v): Seq %d after %d, want increasing", now, c.Seq, last)
		}
		last = c.Seq
		got = append(got, c.Kind+":"+c.Subject)
	}
	return got
}
