package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
	"github.com/gatehouse/gatehouse/internal/storage/sqlstore"
)

// casStore is a KeyStore over a real store that counts the calls to
// ReplaceSigningKeyPrivate. beforeReplace, when set, runs between LoadKeys
// reading a key and swapping it, as a replica starting at the same moment
// would; replaceErr, when set, fails every swap.
type casStore struct {
	KeyStore
	mu            sync.Mutex
	replaces      int
	beforeReplace func(id string, old []byte)
	replaceErr    error
}

func (s *casStore) ReplaceSigningKeyPrivate(ctx context.Context, id string, old, next []byte) error {
	s.mu.Lock()
	s.replaces++
	before, fail := s.beforeReplace, s.replaceErr
	s.mu.Unlock()
	if before != nil {
		before(id, old)
	}
	if fail != nil {
		return fail
	}
	return s.KeyStore.ReplaceSigningKeyPrivate(ctx, id, old, next)
}

func (s *casStore) replaceCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.replaces
}

// openSQLiteKeyStore opens a real SQLite store in t.TempDir().
func openSQLiteKeyStore(t *testing.T) storage.Store {
	t.Helper()
	return openTestStore(t)
}

// storedPrivate maps each stored key id to its private form as stored.
func storedPrivate(t *testing.T, store KeyStore) map[string][]byte {
	t.Helper()
	keys, err := store.SigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, k := range keys {
		out[k.ID] = k.Private
	}
	return out
}

func encryptedConfig(alg string, clock *keyClock) KeyConfig {
	cfg := keyConfig(alg, clock)
	cfg.EncryptionKey = keyTestEncryptionKey
	return cfg
}

// plainKeys stores two keys in plain, as a gatehouse without an encryption
// key leaves them: the one that signs and a rotated one not signing yet.
// It returns the keys loaded then and a token they signed.
func plainKeys(t *testing.T, store KeyStore, alg string, clock *keyClock) (*Keys, string) {
	t.Helper()
	ks := mustLoadKeys(t, store, keyConfig(alg, clock))
	token := signWithKeys(t, ks, "alice")
	clock.Advance(time.Minute)
	if _, err := ks.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	for id, private := range storedPrivate(t, store) {
		if isEnvelope(private) {
			t.Fatalf("key %s stored encrypted without an encryption key", id)
		}
	}
	return ks, token
}

func TestLoadKeys_encrypts_plain_keys_at_rest_when_a_key_encryption_key_is_set(t *testing.T) {
	for _, alg := range []string{AlgRS256, AlgES256, AlgEdDSA} {
		t.Run(alg, func(t *testing.T) {
			clock := newKeyClock()
			store := &casStore{KeyStore: openSQLiteKeyStore(t)}
			plain, token := plainKeys(t, store, alg, clock)
			before := storedPrivate(t, store)

			var logs bytes.Buffer
			cfg := encryptedConfig(alg, clock)
			cfg.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
			ks := mustLoadKeys(t, store, cfg)

			after := storedPrivate(t, store)
			if got, want := slices.Sorted(maps.Keys(after)), slices.Sorted(maps.Keys(before)); !slices.Equal(got, want) {
				t.Fatalf("got stored keys %v, want the same keys %v", got, want)
			}
			for id, private := range after {
				if !isEnvelope(private) {
					t.Errorf("got key %s still stored in plain, want it encrypted", id)
					continue
				}
				der, err := openPrivateKey(keyTestEncryptionKey, id, private)
				if err != nil || !bytes.Equal(der, before[id]) {
					t.Errorf("got %v opening key %s, want the PKCS #8 DER stored before", err, id)
				}
			}
			if got := store.replaceCalls(); got != len(before) {
				t.Errorf("got %d swaps, want one per plain key (%d)", got, len(before))
			}

			// The same keys: kid, JWKS and tokens carry over both ways.
			if got, want := ks.SigningKeyID(), plain.SigningKeyID(); got != want {
				t.Errorf("got signing kid %s, want %s", got, want)
			}
			gotJWKS, _ := json.Marshal(ks.JWKS())
			wantJWKS, _ := json.Marshal(plain.JWKS())
			if !bytes.Equal(gotJWKS, wantJWKS) {
				t.Errorf("got JWKS %s, want the one published before %s", gotJWKS, wantJWKS)
			}
			if err := verifyWithKeys(ks, token); err != nil {
				t.Errorf("token signed before the keys were encrypted: %v", err)
			}
			if err := verifyWithKeys(plain, signWithKeys(t, ks, "bob")); err != nil {
				t.Errorf("token signed after, checked with the keys loaded before: %v", err)
			}

			// One line, naming how many and which, never the keys.
			var line struct {
				Level string   `json:"level"`
				Msg   string   `json:"msg"`
				Count int      `json:"count"`
				Kids  []string `json:"kids"`
			}
			if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
				t.Fatalf("got log %q, want one JSON line: %v", logs.String(), err)
			}
			if line.Level != "INFO" || line.Msg != "encrypted signing keys at rest" || line.Count != len(before) {
				t.Errorf("got log %s, want INFO \"encrypted signing keys at rest\" with count %d", logs.Bytes(), len(before))
			}
			if got, want := slices.Sorted(slices.Values(line.Kids)), slices.Sorted(maps.Keys(before)); !slices.Equal(got, want) {
				t.Errorf("got kids %v logged, want %v", got, want)
			}
			for id, der := range before {
				for _, enc := range []string{base64.StdEncoding.EncodeToString(der), base64.RawURLEncoding.EncodeToString(der), string(der)} {
					if strings.Contains(logs.String(), enc) {
						t.Errorf("got key %s's private part in the log", id)
					}
				}
			}
		})
	}
}

func TestLoadKeys_encryption_at_rest_is_a_no_op_once_every_key_is_encrypted(t *testing.T) {
	clock := newKeyClock()
	store := &casStore{KeyStore: openSQLiteKeyStore(t)}
	plain, token := plainKeys(t, store, AlgEdDSA, clock)
	mustLoadKeys(t, store, encryptedConfig(AlgEdDSA, clock))
	encrypted := storedPrivate(t, store)
	calls := store.replaceCalls()

	var logs bytes.Buffer
	cfg := encryptedConfig(AlgEdDSA, clock)
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	again := mustLoadKeys(t, store, cfg)
	if got := store.replaceCalls() - calls; got != 0 {
		t.Errorf("got %d swaps on the load after the keys were encrypted, want none", got)
	}
	for id, private := range storedPrivate(t, store) {
		if !bytes.Equal(private, encrypted[id]) {
			t.Errorf("got key %s rewritten, want it left as stored", id)
		}
	}
	if strings.Contains(logs.String(), "encrypted signing keys") {
		t.Errorf("got %q logged, want nothing encrypted", logs.String())
	}
	if got, want := again.SigningKeyID(), plain.SigningKeyID(); got != want {
		t.Errorf("got signing kid %s, want %s", got, want)
	}
	if err := verifyWithKeys(again, token); err != nil {
		t.Errorf("token signed before the keys were encrypted: %v", err)
	}
}

func TestLoadKeys_without_a_key_encryption_key_leaves_plain_keys_as_stored(t *testing.T) {
	clock := newKeyClock()
	store := &casStore{KeyStore: openSQLiteKeyStore(t)}
	plainKeys(t, store, AlgES256, clock)
	before := storedPrivate(t, store)
	mustLoadKeys(t, store, keyConfig(AlgES256, clock))
	if got := store.replaceCalls(); got != 0 {
		t.Errorf("got %d swaps without an encryption key, want none", got)
	}
	for id, private := range storedPrivate(t, store) {
		if !bytes.Equal(private, before[id]) {
			t.Errorf("got key %s rewritten, want it left as stored", id)
		}
	}
}

func TestLoadKeys_fails_without_the_key_encryption_key_once_keys_are_encrypted(t *testing.T) {
	tests := []struct {
		name    string
		encKey  []byte
		wantErr error
	}{
		{"no_encryption_key", nil, ErrKeyEncrypted},
		{"another_encryption_key", bytes.Repeat([]byte{0x17}, EncryptionKeyBytes), ErrKeyDecrypt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newKeyClock()
			store := &casStore{KeyStore: openSQLiteKeyStore(t)}
			plainKeys(t, store, AlgES256, clock)
			mustLoadKeys(t, store, encryptedConfig(AlgES256, clock))
			encrypted := storedPrivate(t, store)
			calls := store.replaceCalls()

			cfg := keyConfig(AlgES256, clock)
			cfg.EncryptionKey = tt.encKey
			ks, err := LoadKeys(context.Background(), store, cfg)
			if ks != nil || !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), "GATEHOUSE_KEY_ENCRYPTION_KEY") {
				t.Fatalf("got %v, want %v naming GATEHOUSE_KEY_ENCRYPTION_KEY", err, tt.wantErr)
			}
			if !slices.ContainsFunc(slices.Collect(maps.Keys(encrypted)), func(id string) bool { return strings.Contains(err.Error(), id) }) {
				t.Errorf("got %v, want it to name the key that does not open", err)
			}
			if got := store.replaceCalls() - calls; got != 0 {
				t.Errorf("got %d swaps by the failed load, want none", got)
			}
			for id, private := range storedPrivate(t, store) {
				if !bytes.Equal(private, encrypted[id]) {
					t.Errorf("got key %s rewritten by the failed load, want it left as stored", id)
				}
			}
		})
	}
}

func TestLoadKeys_encrypts_nothing_while_a_stored_key_does_not_open_under_the_key_encryption_key(t *testing.T) {
	// A replica with another encryption key encrypted one key; this one
	// must not encrypt the rest under its own, splitting the store.
	ctx := context.Background()
	clock := newKeyClock()
	store := &casStore{KeyStore: openSQLiteKeyStore(t)}
	plain, _ := plainKeys(t, store, AlgES256, clock)
	other := bytes.Repeat([]byte{0x17}, EncryptionKeyBytes)
	kid := plain.SigningKeyID()
	before := storedPrivate(t, store)
	sealed, err := sealPrivateKey(other, kid, before[kid])
	if err != nil {
		t.Fatal(err)
	}
	if err := store.KeyStore.ReplaceSigningKeyPrivate(ctx, kid, before[kid], sealed); err != nil {
		t.Fatal(err)
	}

	_, err = LoadKeys(ctx, store, encryptedConfig(AlgES256, clock))
	if !errors.Is(err, ErrKeyDecrypt) {
		t.Fatalf("got %v, want %v", err, ErrKeyDecrypt)
	}
	if got := store.replaceCalls(); got != 0 {
		t.Errorf("got %d swaps, want none", got)
	}
	for id, private := range storedPrivate(t, store) {
		if id != kid && isEnvelope(private) {
			t.Errorf("got key %s encrypted under a second encryption key", id)
		}
	}
}

func TestLoadKeys_encrypts_stored_keys_at_rest_under_HS256(t *testing.T) {
	// Keys left from an asymmetric configuration still verify under HS256,
	// so they are encrypted too; the HS256 secret itself is never stored.
	clock := newKeyClock()
	store := &casStore{KeyStore: openSQLiteKeyStore(t)}
	rs, token := plainKeys(t, store, AlgRS256, clock)
	cfg := encryptedConfig(AlgHS256, clock)
	hs := mustLoadKeys(t, store, cfg)
	stored := storedPrivate(t, store)
	if len(stored) != 2 {
		t.Errorf("got %d stored keys, want the 2 RS256 keys only", len(stored))
	}
	for id, private := range stored {
		if !isEnvelope(private) {
			t.Errorf("got key %s still in plain, want it encrypted", id)
		}
		if bytes.Contains(private, keyTestHMACSecret) {
			t.Errorf("got the HS256 secret in key %s", id)
		}
	}
	if err := verifyWithKeys(hs, token); err != nil {
		t.Errorf("RS256 token of key %s under HS256: %v", rs.SigningKeyID(), err)
	}
}

func TestLoadKeys_encrypting_at_rest_keeps_the_envelope_of_a_replica_that_encrypted_the_key_first(t *testing.T) {
	clock := newKeyClock()
	inner := openSQLiteKeyStore(t)
	store := &casStore{KeyStore: inner}
	plain, token := plainKeys(t, store, AlgES256, clock)
	kid := plain.SigningKeyID()
	var theirs []byte
	store.beforeReplace = func(id string, old []byte) {
		if id != kid || theirs != nil {
			return
		}
		// The other replica, starting at the same moment with the same
		// encryption key, swaps the row between this one's read and swap.
		sealed, err := sealPrivateKey(keyTestEncryptionKey, id, old)
		if err != nil {
			t.Error(err)
			return
		}
		if err := inner.ReplaceSigningKeyPrivate(context.Background(), id, old, sealed); err != nil {
			t.Errorf("the other replica's swap: %v", err)
		}
		theirs = sealed
	}

	ks, err := LoadKeys(context.Background(), store, encryptedConfig(AlgES256, clock))
	if err != nil {
		t.Fatalf("got %v, want storage.ErrNotFound from the lost swap taken as the key encrypted elsewhere", err)
	}
	if theirs == nil {
		t.Fatal("the other replica never ran")
	}
	stored := storedPrivate(t, store)
	if got := stored[kid]; !bytes.Equal(got, theirs) {
		t.Errorf("got key %s stored as %q, want the other replica's envelope kept", kid, got[:min(len(got), 24)])
	}
	for id, private := range stored {
		if !isEnvelope(private) {
			t.Errorf("got key %s still in plain, want it encrypted", id)
		}
	}
	if got, want := store.replaceCalls(), len(stored); got != want {
		t.Errorf("got %d swaps, want %d: one per key, none retried once the key was encrypted", got, want)
	}
	if got := ks.SigningKeyID(); got != kid {
		t.Errorf("got signing kid %s, want %s", got, kid)
	}
	if err := verifyWithKeys(ks, token); err != nil {
		t.Errorf("token signed before the keys were encrypted: %v", err)
	}
}

func TestLoadKeys_encrypting_at_rest_fails_when_a_replica_encrypted_the_key_first_under_another_key(t *testing.T) {
	// Replicas started with different encryption keys: the one that loses
	// a swap reads the key again and must refuse what it cannot open,
	// not start on the plain copy it read before.
	clock := newKeyClock()
	inner := openSQLiteKeyStore(t)
	store := &casStore{KeyStore: inner}
	plain, _ := plainKeys(t, store, AlgES256, clock)
	kid := plain.SigningKeyID()
	other := bytes.Repeat([]byte{0x17}, EncryptionKeyBytes)
	store.beforeReplace = func(id string, old []byte) {
		if id != kid {
			return
		}
		store.beforeReplace = nil
		sealed, err := sealPrivateKey(other, id, old)
		if err != nil {
			t.Error(err)
			return
		}
		if err := inner.ReplaceSigningKeyPrivate(context.Background(), id, old, sealed); err != nil {
			t.Errorf("the other replica's swap: %v", err)
		}
	}

	ks, err := LoadKeys(context.Background(), store, encryptedConfig(AlgES256, clock))
	if ks != nil || !errors.Is(err, ErrKeyDecrypt) || !strings.Contains(err.Error(), kid) {
		t.Fatalf("got %v, want %v naming key %s", err, ErrKeyDecrypt, kid)
	}
}

func TestLoadKeys_encrypting_at_rest_skips_a_key_a_replica_retired_first(t *testing.T) {
	clock := newKeyClock()
	inner := openSQLiteKeyStore(t)
	store := &casStore{KeyStore: inner}
	first, _ := plainKeys(t, store, AlgES256, clock)
	// The rotated key signs, and the first one is due for retirement.
	clock.Advance(keyTestPrePublish + first.RetireAfter() + time.Second)
	retired := first.SigningKeyID()
	store.beforeReplace = func(id string, _ []byte) {
		if id != retired {
			return
		}
		store.beforeReplace = nil
		if err := inner.DeleteSigningKey(context.Background(), id); err != nil {
			t.Errorf("the other replica's retirement: %v", err)
		}
	}

	ks, err := LoadKeys(context.Background(), store, encryptedConfig(AlgES256, clock))
	if err != nil {
		t.Fatalf("got %v, want the key retired elsewhere skipped", err)
	}
	stored := storedPrivate(t, store)
	if _, ok := stored[retired]; ok || len(stored) != 1 {
		t.Errorf("got stored %v, want only the rotated key", slices.Sorted(maps.Keys(stored)))
	}
	for id, private := range stored {
		if !isEnvelope(private) {
			t.Errorf("got key %s still in plain, want it encrypted", id)
		}
		if got := ks.SigningKeyID(); got != id {
			t.Errorf("got signing kid %s, want the rotated %s", got, id)
		}
	}
}

func TestLoadKeys_encrypting_at_rest_fails_the_load_when_the_store_refuses(t *testing.T) {
	tests := []struct {
		name       string
		replaceErr error
		want       string
	}{
		{"store_error", errors.New("attempt to write a readonly database"), "readonly database"},
		// A store whose swap never applies: bounded, not a loop.
		{"swap_that_never_applies", storage.ErrNotFound, "gave up after 3 attempts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newKeyClock()
			store := &casStore{KeyStore: openSQLiteKeyStore(t)}
			plainKeys(t, store, AlgEdDSA, clock)
			before := storedPrivate(t, store)
			store.replaceErr = tt.replaceErr
			ks, err := LoadKeys(context.Background(), store, encryptedConfig(AlgEdDSA, clock))
			if ks != nil || err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
			for id, private := range storedPrivate(t, store) {
				if !bytes.Equal(private, before[id]) {
					t.Errorf("got key %s rewritten, want it left as stored", id)
				}
			}
		})
	}
}

func TestLoadKeys_replicas_encrypting_at_rest_at_once_both_start_with_the_same_keys(t *testing.T) {
	// Two processes on one SQLite file, as replicas restarted together
	// after the encryption key was set.
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "gatehouse.db")
	open := func() storage.Store {
		t.Helper()
		s, err := sqlstore.OpenSQLite(ctx, path, sqlstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open(), open()
	clock := newKeyClock()
	plain, token := plainKeys(t, a, AlgEdDSA, clock)

	var wg sync.WaitGroup
	loaded := make([]*Keys, 2)
	errs := make([]error, 2)
	for i, store := range []KeyStore{a, b} {
		wg.Go(func() { loaded[i], errs[i] = LoadKeys(ctx, store, encryptedConfig(AlgEdDSA, clock)) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	for id, private := range storedPrivate(t, a) {
		if _, err := openPrivateKey(keyTestEncryptionKey, id, private); err != nil || !isEnvelope(private) {
			t.Errorf("got key %s stored in plain or not opening (%v), want it encrypted", id, err)
		}
	}
	for i, ks := range loaded {
		if got, want := ks.SigningKeyID(), plain.SigningKeyID(); got != want {
			t.Errorf("replica %d: got signing kid %s, want %s", i, got, want)
		}
		if err := verifyWithKeys(ks, token); err != nil {
			t.Errorf("replica %d: token signed before the keys were encrypted: %v", i, err)
		}
	}
}
