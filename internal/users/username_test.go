package users

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizeUsername_folds_ascii_case_to_the_canonical_form(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"alice", "alice"},
		{"Alice", "alice"},
		{"ALICE.Smith_2-x", "alice.smith_2-x"},
		{"0Zed", "0zed"},
		{"abc", "abc"},
		{strings.Repeat("Ab", 32), strings.Repeat("ab", 32)},
	} {
		got, err := NormalizeUsername(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("NormalizeUsername(%q) = %q, %v; want %q, nil", tc.in, got, err, tc.want)
		}
	}
}

func TestNormalizeUsername_refuses_non_ascii_confusables(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"kelvin_sign_U+212A", "\u212Aate"},
		{"dotted_capital_i_U+0130", "al\u0130ce"},
		{"dotless_i_U+0131", "al\u0131ce"},
		{"fullwidth_a_U+FF41", "\uFF41lice"},
		{"cyrillic_a_U+0430", "\u0430lice"},
		{"long_s_U+017F", "\u017Fam"},
		{"combining_acute_U+0301", "alice\u0301"},
		{"nul", "ali\x00ce"},
		{"invalid_utf8", "ali\xffce"},
		{"space", "ali ce"},
		{"at_sign", "alice@example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NormalizeUsername(tc.in)
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != "username" {
				t.Fatalf("NormalizeUsername(%q) = %q, %v; want a username *ValidationError", tc.in, got, err)
			}
			if got != "" {
				t.Errorf("got %q with the error, want \"\"", got)
			}
		})
	}
}

func TestNormalizeUsername_length_limits_count_the_result(t *testing.T) {
	for _, tc := range []struct {
		name   string
		in     string
		wantOK bool
	}{
		{"three_is_the_minimum", "abc", true},
		{"two_is_too_short", "ab", false},
		{"empty", "", false},
		{"sixty_four_is_the_maximum", strings.Repeat("A", 64), true},
		{"sixty_five_is_too_long", strings.Repeat("a", 65), false},
		// Two runes, four bytes: short in characters and not ASCII either.
		{"non_ascii_is_not_counted_as_letters", "\u212A\u212A", false},
		{"sixty_kb_of_junk", strings.Repeat("a", 60<<10), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NormalizeUsername(tc.in)
			if gotOK := err == nil; gotOK != tc.wantOK {
				t.Fatalf("NormalizeUsername(%d bytes) = %q, %v; want ok=%v", len(tc.in), got, err, tc.wantOK)
			}
			if tc.wantOK && len(got) != len(tc.in) {
				t.Errorf("got %d bytes from %d", len(got), len(tc.in))
			}
		})
	}
}

func TestNormalizeUsername_must_start_with_a_letter_or_digit(t *testing.T) {
	for _, in := range []string{".alice", "_alice", "-alice"} {
		if got, err := NormalizeUsername(in); err == nil {
			t.Errorf("NormalizeUsername(%q) = %q, nil; want an error", in, got)
		}
	}
	for _, in := range []string{"a.b", "a_b", "a-b", "9.b"} {
		if _, err := NormalizeUsername(in); err != nil {
			t.Errorf("NormalizeUsername(%q): %v; want it accepted", in, err)
		}
	}
}
