package users

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// testHasher is cheap enough for tests; production uses DefaultHasher.
var testHasher = Hasher{Memory: 64, Iterations: 1, Parallelism: 1}

func mustHash(t *testing.T, h Hasher, password string) string {
	t.Helper()
	hash, err := h.Hash(password)
	if err != nil {
		t.Fatalf("Hash(%q) = %v", password, err)
	}
	return hash
}

func mustBcrypt(t *testing.T, password string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatalf("bcrypt.GenerateFromPassword(%q) = %v", password, err)
	}
	return string(hash)
}

var phcPattern = regexp.MustCompile(`^\$argon2id\$v=19\$m=64,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)

func TestHasher_hash_is_argon2id_phc_and_verifies(t *testing.T) {
	hash := mustHash(t, testHasher, "correct horse")
	if !phcPattern.MatchString(hash) {
		t.Errorf("Hash() = %q, want PHC argon2id with 16-byte salt and 32-byte key", hash)
	}
	ok, rehash, err := testHasher.Verify(hash, "correct horse")
	if !ok || rehash || err != nil {
		t.Errorf("Verify(own hash, right password) = %v, %v, %v; want true, false, nil", ok, rehash, err)
	}
	if again := mustHash(t, testHasher, "correct horse"); again == hash {
		t.Errorf("two hashes of one password are equal (%q): salt not random", hash)
	}
}

func TestHasher_wrong_password_does_not_verify(t *testing.T) {
	tests := []struct {
		name string
		hash string
	}{
		{"argon2id", mustHash(t, testHasher, "correct horse")},
		{"bcrypt", mustBcrypt(t, "correct horse")},
	}
	for _, tt := range tests {
		for _, pw := range []string{"", "correct hors", "correct horse ", "Correct horse"} {
			ok, rehash, err := testHasher.Verify(tt.hash, pw)
			if ok || rehash || err != nil {
				t.Errorf("Verify(%s hash, %q) = %v, %v, %v; want false, false, nil", tt.name, pw, ok, rehash, err)
			}
		}
	}
}

func TestHasher_bcrypt_hashes_verify_and_need_rehash(t *testing.T) {
	a := mustBcrypt(t, "imported password") // x/crypto writes $2a$
	for _, prefix := range []string{"$2a$", "$2b$", "$2y$"} {
		hash := prefix + strings.TrimPrefix(a, "$2a$")
		ok, rehash, err := testHasher.Verify(hash, "imported password")
		if !ok || !rehash || err != nil {
			t.Errorf("Verify(%s… hash, right password) = %v, %v, %v; want true, true, nil", prefix, ok, rehash, err)
		}
	}
}

func TestHasher_changed_parameters_need_rehash(t *testing.T) {
	hash := mustHash(t, testHasher, "correct horse")
	tests := []struct {
		name string
		h    Hasher
		want bool
	}{
		{"same", testHasher, false},
		{"more memory", Hasher{Memory: 128, Iterations: 1, Parallelism: 1}, true},
		{"more iterations", Hasher{Memory: 64, Iterations: 2, Parallelism: 1}, true},
		{"more lanes", Hasher{Memory: 64, Iterations: 1, Parallelism: 2}, true},
	}
	for _, tt := range tests {
		ok, got, err := tt.h.Verify(hash, "correct horse")
		if !ok || err != nil {
			t.Fatalf("%s: Verify() = %v, _, %v; want true, _, nil", tt.name, ok, err)
		}
		if got != tt.want {
			t.Errorf("%s: Verify(m=64,t=1,p=1 hash) with %+v needsRehash = %v, want %v", tt.name, tt.h, got, tt.want)
		}
	}
}

func TestHasher_malformed_or_hostile_hash_is_an_error(t *testing.T) {
	valid := mustHash(t, testHasher, "pw")
	parts := strings.Split(valid, "$") // "", argon2id, v=19, params, salt, key
	with := func(i int, v string) string {
		p := append([]string(nil), parts...)
		p[i] = v
		return strings.Join(p, "$")
	}
	b := mustBcrypt(t, "pw")
	tests := []struct {
		name string
		hash string
	}{
		{"empty", ""},
		{"plain text", "pw"},
		{"argon2i", strings.Replace(valid, "$argon2id$", "$argon2i$", 1)},
		{"unknown scheme", "$scrypt$ln=15,r=8,p=1$c2FsdA$aGFzaA"},
		{"too few fields", "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0"},
		{"too many fields", valid + "$extra"},
		{"version 16", with(2, "v=16")},
		{"no version", with(2, "m=64,t=1,p=1")},
		{"params out of order", with(3, "t=1,m=64,p=1")},
		{"missing param", with(3, "m=64,t=1")},
		{"non-numeric param", with(3, "m=x,t=1,p=1")},
		{"negative param", with(3, "m=-64,t=1,p=1")},
		{"leading zero", with(3, "m=064,t=1,p=1")},
		{"m=4294967295", with(3, "m=4294967295,t=1,p=1")},
		{"m above 4 GiB", with(3, "m=4194305,t=1,p=1")},
		{"m overflows uint32", with(3, "m=99999999999999999999,t=1,p=1")},
		{"t=0", with(3, "m=64,t=0,p=1")},
		{"t=4294967295", with(3, "m=64,t=4294967295,p=1")},
		{"p=0", with(3, "m=64,t=1,p=0")},
		{"p=256", with(3, "m=2048,t=1,p=256")},
		{"m below 8 KiB per lane", with(3, "m=8,t=1,p=2")},
		{"bad salt base64", with(4, "!!!!")},
		{"padded salt", with(4, parts[4]+"==")},
		{"short salt", with(4, "c2FsdA")},
		{"bad key base64", with(5, "****")},
		{"short key", with(5, "a2V5")},
		{"empty key", with(5, "")},
		{"bcrypt truncated", b[:40]},
		{"bcrypt too long", b + "x"},
		{"bcrypt bad cost", b[:4] + "xx" + b[6:]},
		{"bcrypt cost 31", b[:4] + "31" + b[6:]},
		{"bcrypt bad salt", b[:7] + "!!!!!!!!!!!!!!!!!!!!!!" + b[29:]},
	}
	for _, tt := range tests {
		ok, rehash, err := testHasher.Verify(tt.hash, "pw")
		if err == nil || ok || rehash {
			t.Errorf("%s: Verify(%q) = %v, %v, %v; want false, false, error", tt.name, tt.hash, ok, rehash, err)
		}
	}
}

func TestHasher_Validate_lists_every_problem(t *testing.T) {
	tests := []struct {
		name string
		h    Hasher
		want []string // substrings of the error; nil means valid
	}{
		{"default", DefaultHasher(), nil},
		{"test params", testHasher, nil},
		{"zero", Hasher{}, []string{"parallelism", "memory", "iterations"}},
		{"memory below 8 KiB per lane", Hasher{Memory: 31, Iterations: 1, Parallelism: 4}, []string{"memory must be at least 32 KiB"}},
		{"memory above 4 GiB", Hasher{Memory: 4<<20 + 1, Iterations: 1, Parallelism: 1}, []string{"at most 4194304 KiB"}},
		{"too many iterations", Hasher{Memory: 64, Iterations: 1000, Parallelism: 1}, []string{"iterations"}},
	}
	for _, tt := range tests {
		err := tt.h.Validate()
		if tt.want == nil {
			if err != nil {
				t.Errorf("%s: %+v.Validate() = %v, want nil", tt.name, tt.h, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: %+v.Validate() = nil, want an error", tt.name, tt.h)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %+v.Validate() = %q, want it to mention %q", tt.name, tt.h, err, w)
			}
		}
	}
	if _, err := (Hasher{}).Hash("pw"); err == nil {
		t.Errorf("Hasher{}.Hash() = nil error, want the Validate error")
	}
}

// The only test with production parameters: the OWASP minimum, for real.
func TestDefaultHasher_is_owasp_minimum_and_round_trips(t *testing.T) {
	h := DefaultHasher()
	if want := (Hasher{Memory: 19456, Iterations: 2, Parallelism: 1}); h != want {
		t.Errorf("DefaultHasher() = %+v, want %+v", h, want)
	}
	hash := mustHash(t, h, "correct horse battery staple")
	if !strings.HasPrefix(hash, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("DefaultHasher().Hash() = %q, want m=19456,t=2,p=1", hash)
	}
	ok, rehash, err := h.Verify(hash, "correct horse battery staple")
	if !ok || rehash || err != nil {
		t.Errorf("Verify(default hash) = %v, %v, %v; want true, false, nil", ok, rehash, err)
	}
}

func FuzzVerify(f *testing.F) {
	valid, err := testHasher.Hash("pw")
	if err != nil {
		f.Fatal(err)
	}
	b, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []struct{ hash, password string }{
		{valid, "pw"},
		{valid, "wrong"},
		{string(b), "pw"},
		{"", ""},
		{"$argon2id$", "pw"},
		{"$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5", "pw"},
		{"$argon2id$v=19$m=64,t=1,p=0$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5", "pw"},
		{"$2y$99$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234", "pw"},
		{"$2b$04$" + strings.Repeat("$", 53), "pw"},
	} {
		f.Add(seed.hash, seed.password)
	}
	f.Fuzz(func(t *testing.T, hash, password string) {
		// Hashes within bounds but slow to compute are legitimate; keep
		// the fuzzer on parsing rather than on waiting for argon2/bcrypt.
		if p, err := parseArgon2id(hash); err == nil && uint64(p.memory)*uint64(p.iterations) > 1<<14 {
			t.Skip("expensive argon2id parameters")
		}
		if cost, err := bcrypt.Cost([]byte(hash)); err == nil && cost > bcrypt.MinCost+2 {
			t.Skip("expensive bcrypt cost")
		}
		ok, rehash, err := testHasher.Verify(hash, password)
		if err != nil && (ok || rehash) {
			t.Errorf("Verify(%q, %q) = %v, %v, %v: an error must come with false, false", hash, password, ok, rehash, err)
		}
		if rehash && !ok {
			t.Errorf("Verify(%q, %q) = false, true, nil: needsRehash without a match", hash, password)
		}
		if err != nil && !errors.Is(err, errMalformedHash) {
			t.Errorf("Verify(%q, %q) error %v does not wrap errMalformedHash", hash, password, err)
		}
	})
}
