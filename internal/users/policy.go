package users

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// PasswordPolicy is what a new password must satisfy beyond the length
// bounds every password has (OWASP ASVS 5.0 §6.2: a configurable minimum
// of at least 8, at least 64 characters allowed, no password equal to the
// username, and a deny-list of common passwords).
type PasswordPolicy struct {
	// MinLength in characters; below MinPasswordLen counts as MinPasswordLen.
	MinLength int
	// Denied holds lower-cased passwords that are refused.
	Denied map[string]bool
}

// LoadDenyList reads a deny-list file: one password per line, blank lines
// and lines starting with '#' ignored, compared case-insensitively.
func LoadDenyList(path string) (map[string]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	denied := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		denied[strings.ToLower(line)] = true
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return denied, nil
}

// check validates a new password of username for field.
func (p PasswordPolicy) check(field, username, password string) error {
	if len(password) > MaxPasswordBytes {
		return &ValidationError{Field: field, Message: fmt.Sprintf("must be at most %d bytes", MaxPasswordBytes)}
	}
	minLen := max(p.MinLength, MinPasswordLen)
	if len([]rune(password)) < minLen {
		return &ValidationError{Field: field, Message: fmt.Sprintf("must be at least %d characters", minLen)}
	}
	if username != "" && strings.EqualFold(password, username) {
		return &ValidationError{Field: field, Message: "must not be the username"}
	}
	if p.Denied[strings.ToLower(password)] {
		return &ValidationError{Field: field, Message: "is too common; choose another"}
	}
	return nil
}
