package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"

	"github.com/gatehouse/gatehouse/internal/users"
)

// logNameKey keys the digest of invalid usernames. It is drawn per process
// and never stored, so a log reader cannot test guesses against a digest:
// what fails the username check is often a password typed into the wrong
// field, and a plain hash of a weak one is confirmed by a dictionary.
var logNameKey = []byte(rand.Text())

// LogUsername is username as audit logs and traces may show it: the
// canonical form (users.NormalizeUsername) when it is valid, else
// "invalid:" and 12 hex digits of a keyed digest, 20 bytes however long
// the input. The digest tells repeats of one junk name apart from others
// within a process, and reveals nothing of its text or length (OWASP
// Logging Cheat Sheet: never log authentication passwords).
func LogUsername(username string) string {
	if name, err := users.NormalizeUsername(username); err == nil {
		return name
	}
	mac := hmac.New(sha256.New, logNameKey)
	mac.Write([]byte(username))
	return "invalid:" + hex.EncodeToString(mac.Sum(nil)[:6])
}
