package users

import (
	"errors"
	"strings"
	"testing"
)

// Hashes as the libraries FastAPI apps use wrote them, for the password
// "wonderland-1" (passlib 1.7 and argon2-cffi 21, the one pwdlib uses,
// at cheap parameters).
const (
	passlibBcrypt   = "$2b$04$XZQY.y7joq.yTQ4RdgEDKOLKCNOu7j6J7qYFFV5ypdW/y49xqUHNS"
	passlibBcrypt2y = "$2y$04$HgAPORBLMB9dpzStMGirheKKaKRVUTuN5h65m/K2hEeE2a/YrM7AS"
	passlibArgon2   = "$argon2id$v=19$m=256,t=1,p=1$SkmptTbGmNOaU0qp9Z6T8g$MYFgQu6u42mel2nmnJlNQA"
	argon2cffi      = "$argon2id$v=19$m=256,t=1,p=2$U1As0z3KKAMlud60Kc/vyg$Fe/odI4MtHjpaptKFRsW5g"
	// passlib's bcrypt of an 80-byte password ("x" × 80), which bcrypt
	// truncates to its first 72 bytes.
	passlibBcryptLong = "$2b$04$F6D25X7qNAKdS6Mab91aYeI3SJIKMubzp.jWXbeLtJpabqjuQPmX."
)

// Imported users log in with the password their hash was made from, and
// the login replaces the hash with one at this server's parameters.
func TestImport_users_log_in_with_their_old_passwords(t *testing.T) {
	s, store := newTestService(t)
	batch := []ImportedUser{
		{Username: "Alice", PasswordHash: passlibBcrypt, Scopes: []string{"me"}},
		{Username: "bob", PasswordHash: passlibBcrypt2y, Scopes: []string{"me", "users:read"}},
		{Username: "carol", PasswordHash: passlibArgon2},
		{Username: "dave", PasswordHash: argon2cffi, Disabled: true},
	}
	got, err := s.Import(t.Context(), CLIActor(), batch)
	if err != nil {
		t.Fatalf("Import = %v", err)
	}
	if len(got) != 4 || got[0].Username != "alice" || strings.Join(got[1].Scopes, " ") != "me users:read" || !got[3].Disabled {
		t.Fatalf("Import returned %+v", got)
	}
	for _, name := range []string{"alice", "bob", "carol"} {
		if _, err := s.Authenticate(t.Context(), name, "wonderland-1"); err != nil {
			t.Errorf("Authenticate(%s) = %v", name, err)
			continue
		}
		if h := mustGet(t, store, name).PasswordHash; !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
			t.Errorf("%s's hash after login = %q, want this server's argon2id", name, h)
		}
		if _, err := s.Authenticate(t.Context(), name, "wonderland-2"); err == nil {
			t.Errorf("Authenticate(%s) with a wrong password succeeded", name)
		}
	}
	if _, err := s.Authenticate(t.Context(), "dave", "wonderland-1"); err == nil {
		t.Error("the disabled imported user logged in")
	}
}

// bcrypt reads only the first 72 bytes of a password: an imported bcrypt
// hash of a longer one matches the whole password (and, like on the old
// system, anything with the same first 72 bytes) until the first login
// replaces it with an argon2id hash of the whole password.
func TestImport_bcrypt_passwords_longer_than_72_bytes(t *testing.T) {
	s, _ := newTestService(t)
	if _, err := s.Import(t.Context(), CLIActor(), []ImportedUser{{Username: "erin", PasswordHash: passlibBcryptLong}}); err != nil {
		t.Fatal(err)
	}
	full, prefixTwin := strings.Repeat("x", 80), strings.Repeat("x", 72)+"yyyyyyyy"
	if _, err := s.Authenticate(t.Context(), "erin", full); err != nil {
		t.Fatalf("Authenticate(the 80-byte password) = %v", err)
	}
	// Rehashed now: only the whole password works.
	if _, err := s.Authenticate(t.Context(), "erin", prefixTwin); err == nil {
		t.Error("after the rehash, a password sharing only the first 72 bytes still logs in")
	}
	if _, err := s.Authenticate(t.Context(), "erin", full); err != nil {
		t.Errorf("Authenticate(the 80-byte password) after the rehash = %v", err)
	}
}

// A refused row names its position and field, and nothing of the batch is
// stored.
func TestImport_refuses_a_bad_row_and_stores_nothing(t *testing.T) {
	ok := ImportedUser{Username: "alice", PasswordHash: passlibBcrypt}
	for _, tc := range []struct {
		name  string
		bad   ImportedUser
		field string
		msg   string
	}{
		{"email_username", ImportedUser{Username: "bob@example.com", PasswordHash: passlibBcrypt}, "username", "may contain only"},
		{"repeated_username", ImportedUser{Username: "ALICE", PasswordHash: passlibBcrypt}, "username", `"alice" repeats user 1`},
		{"plaintext_password", ImportedUser{Username: "bob", PasswordHash: "wonderland-1"}, "password_hash", "unsupported algorithm"},
		{"empty_hash", ImportedUser{Username: "bob"}, "password_hash", "empty"},
		{"md5_crypt", ImportedUser{Username: "bob", PasswordHash: "$1$salt$qJH7.N4xYta3aEG/dfqo/0"}, "password_hash", "unsupported algorithm"},
		{"truncated_bcrypt", ImportedUser{Username: "bob", PasswordHash: passlibBcrypt[:50]}, "password_hash", "must be 60 bytes"},
		{"argon2i_not_id", ImportedUser{Username: "bob", PasswordHash: strings.Replace(passlibArgon2, "argon2id", "argon2i", 1)}, "password_hash", "unsupported algorithm"},
		{"unknown_scope", ImportedUser{Username: "bob", PasswordHash: passlibBcrypt, Scopes: []string{"admin"}}, "scopes", `unknown scope "admin"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, store := newTestService(t)
			_, err := s.Import(t.Context(), CLIActor(), []ImportedUser{ok, tc.bad})
			var ie *ImportError
			if !errors.As(err, &ie) || ie.Index != 1 || ie.Field != tc.field || !strings.Contains(ie.Message, tc.msg) {
				t.Fatalf("Import = %v, want user 2's %s refused with %q", err, tc.field, tc.msg)
			}
			if wantEarlier := map[bool]int{true: 0, false: -1}[tc.name == "repeated_username"]; ie.Earlier != wantEarlier {
				t.Errorf("Earlier = %d, want %d", ie.Earlier, wantEarlier)
			}
			if n, err := store.CountUsers(t.Context()); err != nil || n != 0 {
				t.Errorf("CountUsers = %d, %v after the refused import; want 0", n, err)
			}
		})
	}
	t.Run("taken_username", func(t *testing.T) {
		s, store := newTestService(t)
		mustCreateUser(t, s, NewUser{Username: "bob", Password: "bob-password-1"})
		_, err := s.Import(t.Context(), CLIActor(), []ImportedUser{ok, {Username: "Bob", PasswordHash: passlibBcrypt}})
		var ie *ImportError
		if !errors.As(err, &ie) || ie.Index != 1 || ie.Field != "username" || !strings.Contains(ie.Message, `"bob" is taken`) {
			t.Fatalf("Import = %v, want user 2's username taken", err)
		}
		if n, _ := store.CountUsers(t.Context()); n != 1 {
			t.Errorf("CountUsers = %d after the refused import; want 1 (bob alone)", n)
		}
	})
}
