package auth

import (
	"strings"
	"testing"
)

func TestLogUsername_valid_username_logs_its_canonical_form(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"alice", "alice"},
		{"Alice", "alice"},
		{"BOB.Smith-2", "bob.smith-2"},
	} {
		if got := LogUsername(tc.in); got != tc.want {
			t.Errorf("LogUsername(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestLogUsername_bounds_and_hides_invalid_input(t *testing.T) {
	const password = "correct horse battery staple"
	for _, tc := range []struct{ name, in string }{
		{"password_typed_as_username", password},
		{"sixty_kb_of_junk", strings.Repeat("x", 60<<10)},
		{"kelvin_sign", "\u212Aate"},
		{"dotless_i", "al\u0131ce"},
		{"control_characters", "alice\r\nlevel=ERROR forged=1"},
		{"empty", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := LogUsername(tc.in)
			if want := len("invalid:") + 12; len(got) != want || !strings.HasPrefix(got, "invalid:") {
				t.Fatalf("LogUsername(%.40q) = %q, want \"invalid:\" and 12 hex digits (%d bytes)", tc.in, got, want)
			}
			if strings.Trim(got[len("invalid:"):], "0123456789abcdef") != "" {
				t.Errorf("got %q, want hex digits after \"invalid:\"", got)
			}
			if tc.in != "" && strings.Contains(got, tc.in) {
				t.Errorf("got %q, which contains the input", got)
			}
			// The same input logs the same, so repeats can be told apart.
			if again := LogUsername(tc.in); again != got {
				t.Errorf("got %q then %q for the same input", got, again)
			}
		})
	}
	if a, b := LogUsername(password), LogUsername(password+"!"); a == b {
		t.Errorf("two different invalid inputs both log %q", a)
	}
}
