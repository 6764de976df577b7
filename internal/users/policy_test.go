package users

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPasswordPolicy(t *testing.T) {
	denyFile := filepath.Join(t.TempDir(), "common.txt")
	if err := os.WriteFile(denyFile, []byte("# common passwords\nPassword123456\n\nletmein-please\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	denied, err := LoadDenyList(denyFile)
	if err != nil {
		t.Fatal(err)
	}
	p := PasswordPolicy{MinLength: 12, Denied: denied}
	for _, tc := range []struct {
		name, username, password, want string
	}{
		{"asvs_6.2.1_configured_minimum", "alice", "elevenchars", "at least 12 characters"},
		{"minimum_counts_characters_not_bytes", "alice", strings.Repeat("é", 12), ""},
		{"asvs_6.2.9_64_characters_are_allowed", "alice", strings.Repeat("x", 64), ""},
		{"longer_than_1024_bytes_is_refused", "alice", strings.Repeat("x", MaxPasswordBytes+1), "at most"},
		{"asvs_6.2.11_the_username_is_refused", "alicealice12", "AliceAlice12", "must not be the username"},
		{"asvs_6.2.4_a_denied_password_is_refused_case_insensitively", "alice", "PASSWORD123456", "too common"},
		{"comments_are_not_passwords", "alice", "# common passwords", ""},
		{"good_password", "alice", "correct horse battery", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := p.check("password", tc.username, tc.password)
			var ve *ValidationError
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("got %v, want it accepted", err)
			case tc.want != "" && (!errors.As(err, &ve) || ve.Field != "password" || !strings.Contains(ve.Message, tc.want)):
				t.Fatalf("got %v, want a password field error mentioning %q", err, tc.want)
			}
		})
	}
	t.Run("minimum_below_8_counts_as_8", func(t *testing.T) {
		if err := (PasswordPolicy{MinLength: 4}).check("password", "", "short12"); err == nil {
			t.Fatal("a 7-character password was accepted")
		}
	})
	t.Run("missing_deny_list_file_is_an_error", func(t *testing.T) {
		if _, err := LoadDenyList(filepath.Join(t.TempDir(), "nope")); err == nil {
			t.Fatal("got nil error")
		}
	})
}
