package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// runKeyTests is the KeyStore part of the suite.
func runKeyTests(t *testing.T, newStore func(t *testing.T) storage.Store) {
	zone := time.FixedZone("UTC-3", -3*3600)

	t.Run("ensure_signing_key_concurrent_callers_share_one_key", func(t *testing.T) {
		s := newStore(t)
		ensureSigningKeyOnce(t, []storage.Store{s}, 20)
	})

	t.Run("ensure_signing_key_create_error_stores_nothing", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		errBoom := errors.New("boom")
		_, err := s.EnsureSigningKey(ctx, "RS256", func() (storage.SigningKey, error) { return storage.SigningKey{}, errBoom })
		if !errors.Is(err, errBoom) {
			t.Errorf("EnsureSigningKey with failing create = %v, want %v", err, errBoom)
		}
		if keys := signingKeys(t, s); len(keys) != 0 {
			t.Errorf("SigningKeys() = %+v, want none", keys)
		}
		assertNoChanges(t, s, 0, "EnsureSigningKey with failing create")
	})

	t.Run("signing_keys_newest_first_and_ensure_returns_the_existing_key", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		for _, k := range []storage.SigningKey{
			{ID: "rs", Algorithm: "RS256", Private: []byte("r"), CreatedAt: base},
			{ID: "es", Algorithm: "ES256", Private: []byte("e"), CreatedAt: base.Add(time.Hour)},
			{ID: "ed", Algorithm: "EdDSA", Private: []byte("d"), CreatedAt: base.Add(-time.Hour)},
		} {
			got, err := s.EnsureSigningKey(ctx, k.Algorithm, func() (storage.SigningKey, error) { return k, nil })
			if err != nil {
				t.Fatalf("EnsureSigningKey(%s) = %v", k.Algorithm, err)
			}
			want := k
			want.ActivatesAt = k.CreatedAt // a zero ActivatesAt is set to CreatedAt
			if !reflect.DeepEqual(got, want) {
				t.Errorf("EnsureSigningKey(%s) = %+v, want %+v", k.Algorithm, got, want)
			}
		}
		if got, want := keyIDs(signingKeys(t, s)), []string{"es", "rs", "ed"}; !slices.Equal(got, want) {
			t.Errorf("SigningKeys() IDs = %v, want %v", got, want)
		}
		cursor := lastChange(t, s)
		again, err := s.EnsureSigningKey(ctx, "RS256", func() (storage.SigningKey, error) {
			t.Error("create called although an RS256 key exists")
			return storage.SigningKey{}, errors.New("unexpected")
		})
		if err != nil || again.ID != "rs" {
			t.Errorf("EnsureSigningKey(RS256) again = %+v, %v; want key rs", again, err)
		}
		assertNoChanges(t, s, cursor, "EnsureSigningKey of an existing key")
	})

	t.Run("signing_keys_of_one_creation_time_are_newest_inserted_first", func(t *testing.T) {
		s := newStore(t)
		for _, id := range []string{"first", "second", "third"} {
			mustCreateSigningKey(t, s, storage.SigningKey{ID: id, Algorithm: "EdDSA", Private: []byte(id), CreatedAt: base})
		}
		if got, want := keyIDs(signingKeys(t, s)), []string{"third", "second", "first"}; !slices.Equal(got, want) {
			t.Errorf("SigningKeys() IDs = %v, want %v", got, want)
		}
	})

	t.Run("create_signing_key_round_trips_activates_at_in_utc_and_is_newest", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		first, err := s.EnsureSigningKey(ctx, "EdDSA", func() (storage.SigningKey, error) {
			return storage.SigningKey{ID: "k1", Algorithm: "EdDSA", Private: []byte("one"), CreatedAt: base}, nil
		})
		if err != nil {
			t.Fatalf("EnsureSigningKey(EdDSA) = %v", err)
		}
		// A rotation: published now, signing from a day later.
		rotated := storage.SigningKey{
			ID:          "k2",
			Algorithm:   "EdDSA",
			Private:     []byte{0, 1, 0xfe, 0xff}, // opaque bytes, NULs too
			CreatedAt:   base.Add(time.Hour + 123456789).In(zone),
			ActivatesAt: base.Add(25 * time.Hour).In(zone),
		}
		mustCreateSigningKey(t, s, rotated)
		keys := signingKeys(t, s)
		if len(keys) != 2 {
			t.Fatalf("SigningKeys() = %+v, want k2 then k1", keys)
		}
		got := keys[0]
		if got.ID != "k2" || got.Algorithm != "EdDSA" || !bytes.Equal(got.Private, rotated.Private) {
			t.Errorf("SigningKeys()[0] = %+v, want %+v", got, rotated)
		}
		assertUTC(t, "CreatedAt", got.CreatedAt, rotated.CreatedAt)
		assertUTC(t, "ActivatesAt", got.ActivatesAt, rotated.ActivatesAt)
		if !reflect.DeepEqual(keys[1], first) {
			t.Errorf("SigningKeys()[1] = %+v, want %+v", keys[1], first)
		}
		newest, err := s.EnsureSigningKey(ctx, "EdDSA", func() (storage.SigningKey, error) {
			t.Error("create called although EdDSA keys exist")
			return storage.SigningKey{}, errors.New("unexpected")
		})
		if err != nil || newest.ID != "k2" {
			t.Errorf("EnsureSigningKey(EdDSA) after rotation = %+v, %v; want the newest key k2", newest, err)
		}
	})

	t.Run("create_signing_key_sets_a_zero_activates_at_to_created_at", func(t *testing.T) {
		s := newStore(t)
		mustCreateSigningKey(t, s, storage.SigningKey{ID: "k1", Algorithm: "RS256", Private: []byte("p"), CreatedAt: base})
		keys := signingKeys(t, s)
		if len(keys) != 1 {
			t.Fatalf("SigningKeys() = %+v, want one key", keys)
		}
		assertUTC(t, "ActivatesAt", keys[0].ActivatesAt, base)
	})

	t.Run("create_signing_key_with_a_taken_id_fails_and_keeps_the_first", func(t *testing.T) {
		s := newStore(t)
		mustCreateSigningKey(t, s, storage.SigningKey{ID: "k1", Algorithm: "RS256", Private: []byte("first"), CreatedAt: base})
		cursor := lastChange(t, s)
		dup := storage.SigningKey{ID: "k1", Algorithm: "RS256", Private: []byte("second"), CreatedAt: base.Add(time.Hour)}
		if err := s.CreateSigningKey(t.Context(), dup); err == nil {
			t.Errorf("second CreateSigningKey(k1) = nil, want an error")
		}
		if keys := signingKeys(t, s); len(keys) != 1 || string(keys[0].Private) != "first" {
			t.Errorf("SigningKeys() = %+v, want only the first k1", keys)
		}
		assertNoChanges(t, s, cursor, "a refused CreateSigningKey")
	})

	t.Run("delete_signing_key_removes_only_that_key", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		for i, id := range []string{"old", "new"} {
			mustCreateSigningKey(t, s, storage.SigningKey{ID: id, Algorithm: "ES256", Private: []byte(id), CreatedAt: base.Add(time.Duration(i) * time.Hour)})
		}
		if err := s.DeleteSigningKey(ctx, "old"); err != nil {
			t.Fatalf("DeleteSigningKey(old) = %v", err)
		}
		if got := keyIDs(signingKeys(t, s)); !slices.Equal(got, []string{"new"}) {
			t.Errorf("SigningKeys() after deleting old = %v, want [new]", got)
		}
		cursor := lastChange(t, s)
		for _, id := range []string{"old", "never-existed"} {
			if err := s.DeleteSigningKey(ctx, id); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("DeleteSigningKey(%s) = %v, want ErrNotFound", id, err)
			}
		}
		assertNoChanges(t, s, cursor, "DeleteSigningKey of missing keys")
	})

	t.Run("replace_signing_key_private_swaps_only_the_expected_form", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		mustCreateSigningKey(t, s, storage.SigningKey{ID: "k1", Algorithm: "EdDSA", Private: []byte("plain"), CreatedAt: base})
		mustCreateSigningKey(t, s, storage.SigningKey{ID: "k0", Algorithm: "EdDSA", Private: []byte("plain"), CreatedAt: base.Add(-time.Hour)})
		cursor := lastChange(t, s)
		tests := []struct {
			name      string
			id        string
			old, next string
			want      error
		}{
			{"stale_form", "k1", "other", "sealed", storage.ErrNotFound},
			{"prefix_of_the_form", "k1", "pla", "sealed", storage.ErrNotFound},
			{"unknown_key", "nope", "plain", "sealed", storage.ErrNotFound},
			{"expected_form", "k1", "plain", "sealed", nil},
			{"the_same_swap_again", "k1", "plain", "sealed-again", storage.ErrNotFound},
		}
		for _, tt := range tests {
			err := s.ReplaceSigningKeyPrivate(ctx, tt.id, []byte(tt.old), []byte(tt.next))
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Errorf("ReplaceSigningKeyPrivate(%s: %s, %q → %q) = %v, want %v", tt.name, tt.id, tt.old, tt.next, err, tt.want)
			}
		}
		keys := signingKeys(t, s)
		got := map[string]string{}
		for _, k := range keys {
			got[k.ID] = string(k.Private)
		}
		if want := map[string]string{"k1": "sealed", "k0": "plain"}; !reflect.DeepEqual(got, want) {
			t.Errorf("private forms after the swaps = %v, want %v", got, want)
		}
		if got := changesAfter(t, s, cursor); len(got) != 1 || got[0].Kind != storage.ChangeKeys {
			t.Errorf("one successful swap appended %v, want one keys entry", entries(got))
		}
	})

	t.Run("every_signing_key_write_appends_a_keys_change", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		tests := []struct {
			name  string
			write func() error
		}{
			{"EnsureSigningKey_creating_a_key", func() error {
				_, err := s.EnsureSigningKey(ctx, "EdDSA", func() (storage.SigningKey, error) {
					return storage.SigningKey{ID: "k1", Algorithm: "EdDSA", Private: []byte("p"), CreatedAt: base}, nil
				})
				return err
			}},
			{"CreateSigningKey", func() error {
				return s.CreateSigningKey(ctx, storage.SigningKey{ID: "k2", Algorithm: "EdDSA", Private: []byte("q"), CreatedAt: base.Add(time.Hour)})
			}},
			{"ReplaceSigningKeyPrivate", func() error {
				return s.ReplaceSigningKeyPrivate(ctx, "k2", []byte("q"), []byte("sealed-q"))
			}},
			{"DeleteSigningKey", func() error { return s.DeleteSigningKey(ctx, "k1") }},
		}
		for _, tt := range tests {
			cursor := lastChange(t, s)
			if err := tt.write(); err != nil {
				t.Fatalf("%s = %v", tt.name, err)
			}
			if got := changesAfter(t, s, cursor); len(got) != 1 || got[0].Kind != storage.ChangeKeys {
				t.Errorf("%s appended %v, want one %q entry", tt.name, entries(got), storage.ChangeKeys)
			}
		}
		// Reads append nothing.
		cursor := lastChange(t, s)
		signingKeys(t, s)
		assertNoChanges(t, s, cursor, "SigningKeys")
	})

	t.Run("ensure_secret_returns_the_same_bytes_to_20_concurrent_callers", func(t *testing.T) {
		s := newStore(t)
		ensureSecretShared(t, []storage.Store{s}, 20)
	})

	t.Run("ensure_secret_create_error_stores_nothing", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		errBoom := errors.New("boom")
		if _, err := s.EnsureSecret(ctx, "hmac", func() ([]byte, error) { return nil, errBoom }); !errors.Is(err, errBoom) {
			t.Errorf("EnsureSecret with failing create = %v, want %v", err, errBoom)
		}
		got, err := s.EnsureSecret(ctx, "hmac", func() ([]byte, error) { return []byte("second"), nil })
		if err != nil || string(got) != "second" {
			t.Errorf("EnsureSecret after a failed create = %q, %v; want the new create's bytes", got, err)
		}
	})

	t.Run("replace_secret_swaps_only_the_expected_value", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		if _, err := s.EnsureSecret(ctx, "chain", func() ([]byte, error) { return []byte("plain"), nil }); err != nil {
			t.Fatal(err)
		}
		if err := s.ReplaceSecret(ctx, "chain", []byte("stale"), []byte("sealed")); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("ReplaceSecret from a stale value = %v, want ErrNotFound", err)
		}
		if err := s.ReplaceSecret(ctx, "nope", []byte("plain"), []byte("sealed")); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("ReplaceSecret of an unknown name = %v, want ErrNotFound", err)
		}
		if err := s.ReplaceSecret(ctx, "chain", []byte("plain"), []byte("sealed")); err != nil {
			t.Fatalf("ReplaceSecret = %v", err)
		}
		got, err := s.EnsureSecret(ctx, "chain", func() ([]byte, error) { return []byte("other"), nil })
		if err != nil || string(got) != "sealed" {
			t.Errorf("EnsureSecret after the swap = %q, %v; want sealed", got, err)
		}
	})

	t.Run("ensure_secret_keeps_opaque_bytes_per_name", func(t *testing.T) {
		ctx := t.Context()
		s := newStore(t)
		secrets := map[string][]byte{
			"hmac":   {0, 0xff, 0, 0x80, '\'', '"', '\\'},
			"cookie": bytes.Repeat([]byte{0xa5}, 64),
		}
		for name, b := range secrets {
			got, err := s.EnsureSecret(ctx, name, func() ([]byte, error) { return slices.Clone(b), nil })
			if err != nil || !bytes.Equal(got, b) {
				t.Errorf("EnsureSecret(%s) creating = %x, %v; want %x", name, got, err, b)
			}
		}
		for name, b := range secrets {
			got, err := s.EnsureSecret(ctx, name, func() ([]byte, error) {
				t.Errorf("EnsureSecret(%s) called create although the secret exists", name)
				return []byte("unexpected"), nil
			})
			if err != nil || !bytes.Equal(got, b) {
				t.Errorf("EnsureSecret(%s) again = %x, %v; want %x", name, got, err, b)
			}
		}
	})
}

// runKeyTwoInstanceTests is the part of the KeyStore suite that needs two
// instances on one database.
func runKeyTwoInstanceTests(t *testing.T, newPair func(t *testing.T) (a, b storage.Store)) {
	t.Run("ensure_signing_key_on_two_instances_creates_one_key", func(t *testing.T) {
		a, b := newPair(t)
		ensureSigningKeyOnce(t, []storage.Store{a, b}, 10)
	})

	t.Run("ensure_secret_on_two_instances_returns_the_same_bytes", func(t *testing.T) {
		a, b := newPair(t)
		ensureSecretShared(t, []storage.Store{a, b}, 20)
	})

	t.Run("a_key_written_on_one_instance_is_read_on_the_other", func(t *testing.T) {
		a, b := newPair(t)
		k := storage.SigningKey{ID: "k1", Algorithm: "EdDSA", Private: []byte("p"), CreatedAt: base, ActivatesAt: base.Add(time.Hour)}
		mustCreateSigningKey(t, a, k)
		if got := signingKeys(t, b); len(got) != 1 || !reflect.DeepEqual(got[0], k) {
			t.Errorf("SigningKeys() on b = %+v, want [%+v]", got, k)
		}
	})
}

// ensureSigningKeyOnce has n concurrent callers, spread over stores, ask
// for a key: create must run once and every caller get its key.
func ensureSigningKeyOnce(t *testing.T, stores []storage.Store, n int) {
	t.Helper()
	var created atomic.Int32
	create := func() (storage.SigningKey, error) {
		i := created.Add(1)
		return storage.SigningKey{ID: fmt.Sprintf("key-%d", i), Algorithm: "EdDSA", Private: []byte{byte(i)}, CreatedAt: base}, nil
	}
	keys := make([]storage.SigningKey, n)
	errs := make([]error, n)
	release := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-release
			keys[i], errs[i] = stores[i%len(stores)].EnsureSigningKey(t.Context(), "EdDSA", create)
		})
	}
	close(release)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("EnsureSigningKey #%d = %v", i, errs[i])
		}
		if !reflect.DeepEqual(keys[i], keys[0]) {
			t.Errorf("EnsureSigningKey #%d = %+v, want the same key as #0 %+v", i, keys[i], keys[0])
		}
	}
	if got := created.Load(); got != 1 {
		t.Errorf("create called %d times, want 1", got)
	}
	for i, s := range stores {
		if stored := signingKeys(t, s); len(stored) != 1 || !reflect.DeepEqual(stored[0], keys[0]) {
			t.Errorf("SigningKeys() on store %d = %+v, want exactly [%+v]", i, stored, keys[0])
		}
	}
}

// ensureSecretShared has n concurrent callers, spread over stores, ask
// for one secret, each create making different bytes: every caller must
// get the same bytes, the ones one create made, and they stay.
func ensureSecretShared(t *testing.T, stores []storage.Store, n int) {
	t.Helper()
	var mu sync.Mutex
	var made [][]byte
	create := func() ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		b := []byte(fmt.Sprintf("secret-%02d", len(made)))
		made = append(made, b)
		return slices.Clone(b), nil
	}
	got := make([][]byte, n)
	errs := make([]error, n)
	release := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-release
			got[i], errs[i] = stores[i%len(stores)].EnsureSecret(t.Context(), "hmac", create)
		})
	}
	close(release)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("EnsureSecret #%d = %v", i, errs[i])
		}
		if !bytes.Equal(got[i], got[0]) {
			t.Errorf("EnsureSecret #%d = %q, want the same bytes as #0 %q", i, got[i], got[0])
		}
	}
	if len(made) == 0 || len(made) > n {
		t.Errorf("create called %d times by %d callers, want 1 to %d", len(made), n, n)
	}
	if !slices.ContainsFunc(made, func(b []byte) bool { return bytes.Equal(b, got[0]) }) {
		t.Errorf("EnsureSecret returned %q, which no create made (%q)", got[0], made)
	}
	for i, s := range stores {
		again, err := s.EnsureSecret(t.Context(), "hmac", func() ([]byte, error) {
			t.Errorf("EnsureSecret on store %d called create although the secret exists", i)
			return []byte("unexpected"), nil
		})
		if err != nil || !bytes.Equal(again, got[0]) {
			t.Errorf("EnsureSecret on store %d afterwards = %q, %v; want %q", i, again, err, got[0])
		}
	}
}

func mustCreateSigningKey(t *testing.T, s storage.Store, k storage.SigningKey) {
	t.Helper()
	if err := s.CreateSigningKey(t.Context(), k); err != nil {
		t.Fatalf("CreateSigningKey(%s) = %v", k.ID, err)
	}
}

func signingKeys(t *testing.T, s storage.Store) []storage.SigningKey {
	t.Helper()
	keys, err := s.SigningKeys(t.Context())
	if err != nil {
		t.Fatalf("SigningKeys() = %v", err)
	}
	return keys
}

func keyIDs(keys []storage.SigningKey) []string {
	ids := []string{}
	for _, k := range keys {
		ids = append(ids, k.ID)
	}
	return ids
}
