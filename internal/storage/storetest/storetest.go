package storetest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// RunTests runs the whole suite; newStore returns an empty store and
// arranges for it to be closed. Every case builds its own state in a store
// of its own.
func RunTests(t *testing.T, newStore func(t *testing.T) storage.Store) {
	t.Run("users", func(t *testing.T) { runUserTests(t, newStore) })
	t.Run("keys", func(t *testing.T) { runKeyTests(t, newStore) })
	t.Run("sessions", func(t *testing.T) { runSessionTests(t, newStore) })
	t.Run("changes", func(t *testing.T) { runChangeTests(t, newStore) })
	t.Run("clients", func(t *testing.T) { runClientTests(t, newStore) })
	t.Run("mfa", func(t *testing.T) { runMFATests(t, newStore) })
	t.Run("attempts", func(t *testing.T) { runAttemptTests(t, newStore) })
	t.Run("faults", func(t *testing.T) { runFaultTests(t, newStore) })
	t.Run("ping_succeeds_on_a_healthy_store", func(t *testing.T) {
		if err := newStore(t).Ping(t.Context()); err != nil {
			t.Errorf("Ping() = %v, want nil", err)
		}
	})
}

// RunTwoInstanceTests runs the cases that need two store instances on one
// database (another process's view): newPair returns two stores over the
// same empty database and arranges for both to be closed.
func RunTwoInstanceTests(t *testing.T, newPair func(t *testing.T) (a, b storage.Store)) {
	t.Run("users", func(t *testing.T) { runUserTwoInstanceTests(t, newPair) })
	t.Run("keys", func(t *testing.T) { runKeyTwoInstanceTests(t, newPair) })
	t.Run("sessions", func(t *testing.T) { runSessionTwoInstanceTests(t, newPair) })
	t.Run("changes", func(t *testing.T) { runChangeTwoInstanceTests(t, newPair) })
	t.Run("attempts", func(t *testing.T) { runAttemptTwoInstanceTests(t, newPair) })
}

// base is the suite's "now": the records' times are set around it, never
// from the test machine's clock, except where a case checks the store's
// own clock. Test sessions idle out an hour after it and end a day after.
var base = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

var userSeq atomic.Int64

// newUser returns a user with a unique ID and the given username, created
// a day before base, ready for CreateUser.
func newUser(t *testing.T, username string) *storage.User {
	t.Helper()
	return &storage.User{
		ID:           fmt.Sprintf("id-%s-%d", username, userSeq.Add(1)),
		Username:     username,
		PasswordHash: "hash-of-" + username,
		Scopes:       []string{"me"},
		CreatedAt:    base.Add(-24 * time.Hour),
		UpdatedAt:    base.Add(-24 * time.Hour),
	}
}

func mustCreateUser(t *testing.T, s storage.Store, u *storage.User) {
	t.Helper()
	if err := s.CreateUser(t.Context(), u); err != nil {
		t.Fatalf("CreateUser(%q) = %v", u.Username, err)
	}
}

func mustUser(t *testing.T, s storage.Store, username string) *storage.User {
	t.Helper()
	u, err := s.UserByUsername(t.Context(), username)
	if err != nil {
		t.Fatalf("UserByUsername(%q) = %v", username, err)
	}
	return u
}

func mustUpdateUser(t *testing.T, s storage.Store, username string, fn func(*storage.User) error) *storage.User {
	t.Helper()
	u, err := s.UpdateUser(t.Context(), username, fn)
	if err != nil {
		t.Fatalf("UpdateUser(%q) = %v", username, err)
	}
	return u
}

// raiseEpoch raises the user's TokenEpoch by one with UpdatedAt at.
func raiseEpoch(t *testing.T, s storage.Store, username string, at time.Time) *storage.User {
	t.Helper()
	return mustUpdateUser(t, s, username, func(u *storage.User) error {
		u.TokenEpoch++
		u.UpdatedAt = at
		return nil
	})
}

// hashOf is the hex SHA-256 of secret, as SecretHash fields hold it.
func hashOf(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// newSession returns a login of u through clientID with every field set,
// at base, live until an hour after it.
func newSession(t *testing.T, id string, u *storage.User, clientID string) *storage.Session {
	t.Helper()
	return &storage.Session{
		ID:            id,
		UserID:        u.ID,
		ClientID:      clientID,
		Scopes:        []string{"me"},
		CreatedAt:     base,
		LastUsedAt:    base,
		IdleExpiresAt: base.Add(time.Hour),
		ExpiresAt:     base.Add(24 * time.Hour),
		Generation:    1,
		SecretHash:    hashOf(id + "/1"),
		RotatedAt:     base,
		ClientAddr:    "192.0.2.1",
		UserAgent:     "storetest/1.0",
	}
}

// mustCreateSession stores sess, a grant authorised at the epoch given,
// with no throttle settlement.
func mustCreateSession(t *testing.T, s storage.Store, sess *storage.Session, epoch int64) {
	t.Helper()
	if err := s.CreateSession(t.Context(), sess, epoch, nil); err != nil {
		t.Fatalf("CreateSession(%q) = %v", sess.ID, err)
	}
}

func mustSession(t *testing.T, s storage.Store, id string) *storage.Session {
	t.Helper()
	sess, err := s.Session(t.Context(), id)
	if err != nil {
		t.Fatalf("Session(%q) = %v", id, err)
	}
	return sess
}

// assertNoSession checks that no session id is stored.
func assertNoSession(t *testing.T, s storage.Store, id string) {
	t.Helper()
	if got, err := s.Session(t.Context(), id); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Session(%q) = %+v, %v; want ErrNotFound", id, got, err)
	}
}

// mustRevoke revokes one session of u at now.
func mustRevoke(t *testing.T, s storage.Store, u *storage.User, id string, now time.Time) {
	t.Helper()
	n, err := s.RevokeSessions(t.Context(), u.ID, id, "", now)
	if err != nil || n != 1 {
		t.Fatalf("RevokeSessions(%q, %q) = %d, %v; want 1, nil", u.ID, id, n, err)
	}
}

// inUTC returns a copy of sess with every time in UTC, as a store returns
// it.
func inUTC(sess *storage.Session) *storage.Session {
	c := *sess
	c.Scopes = slices.Clone(sess.Scopes)
	for _, p := range []*time.Time{&c.CreatedAt, &c.LastUsedAt, &c.IdleExpiresAt, &c.ExpiresAt, &c.RotatedAt, &c.RevokedAt} {
		*p = p.UTC()
	}
	return &c
}

// cloneSession and cloneUser copy what an fn saw, so that later changes
// to the record it was handed do not show in the copy.
func cloneSession(s *storage.Session) *storage.Session {
	if s == nil {
		return nil
	}
	c := *s
	c.Scopes = slices.Clone(s.Scopes)
	return &c
}

func cloneUser(u *storage.User) *storage.User {
	if u == nil {
		return nil
	}
	c := *u
	c.Scopes = slices.Clone(u.Scopes)
	return &c
}

func lastChange(t *testing.T, s storage.Store) int64 {
	t.Helper()
	seq, err := s.LastChange(t.Context())
	if err != nil {
		t.Fatalf("LastChange() = %v", err)
	}
	return seq
}

// changesAfter returns every entry with Seq above after, paging through
// Changes, and checks that Seq strictly increases.
func changesAfter(t *testing.T, s storage.Store, after int64) []storage.Change {
	t.Helper()
	var all []storage.Change
	for {
		page, err := s.Changes(t.Context(), after, 100)
		if err != nil {
			t.Fatalf("Changes(%d, 100) = %v", after, err)
		}
		for _, c := range page {
			if c.Seq <= after {
				t.Fatalf("Changes(%d, 100) returned Seq %d, want above %d and increasing", after, c.Seq, after)
			}
			after = c.Seq
		}
		all = append(all, page...)
		if len(page) < 100 {
			return all
		}
	}
}

// entries names changes as "kind:subject", sorted: the entries one
// transaction appends come in no particular order.
func entries(changes []storage.Change) []string {
	got := []string{}
	for _, c := range changes {
		got = append(got, c.Kind+":"+c.Subject)
	}
	slices.Sort(got)
	return got
}

// entryNames is the sorted "kind:subject" list of the given entries.
func entryNames(kind string, subjects ...string) []string {
	want := []string{}
	for _, s := range subjects {
		want = append(want, kind+":"+s)
	}
	slices.Sort(want)
	return want
}

// assertChangesAt checks that every entry of kind in changes was made at
// at.
func assertChangesAt(t *testing.T, changes []storage.Change, kind string, at time.Time) {
	t.Helper()
	for _, c := range changes {
		if c.Kind == kind && !c.At.Equal(at) {
			t.Errorf("%s entry for %q has At %v, want %v", c.Kind, c.Subject, c.At, at)
		}
	}
}

// assertNoChanges checks that nothing was appended to the log after seq.
func assertNoChanges(t *testing.T, s storage.Store, after int64, what string) {
	t.Helper()
	if got := changesAfter(t, s, after); len(got) != 0 {
		t.Errorf("%s appended %v, want nothing", what, entries(got))
	}
}

// assertUTC checks that got is the instant want, in UTC.
func assertUTC(t *testing.T, name string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) || got.Location() != time.UTC {
		t.Errorf("%s = %v, want %v in UTC", name, got, want.UTC())
	}
}

// attemptState reads the throttling state of key, changing nothing.
func attemptState(t *testing.T, s storage.Store, key string) storage.LoginAttempts {
	t.Helper()
	var got storage.LoginAttempts
	err := s.UpdateLoginAttempts(t.Context(), storage.AttemptUpdate{
		Keys: []string{key},
		Fn: func(st []storage.LoginAttempts) error {
			got = st[0]
			return nil
		},
	})
	if err != nil {
		t.Fatalf("UpdateLoginAttempts(%q) reading = %v", key, err)
	}
	return got
}

// setAttempts stores failures for key, in a window opened at base.
func setAttempts(t *testing.T, s storage.Store, key string, failures int) {
	t.Helper()
	err := s.UpdateLoginAttempts(t.Context(), storage.AttemptUpdate{
		Keys: []string{key},
		Fn: func(st []storage.LoginAttempts) error {
			st[0].Failures = failures
			st[0].WindowStart = base
			if failures == 0 {
				st[0].WindowStart = time.Time{}
			}
			return nil
		},
	})
	if err != nil {
		t.Fatalf("UpdateLoginAttempts(%q) = %v", key, err)
	}
}
