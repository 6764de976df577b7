package users

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Hashes are written in the PHC string format
// (https://github.com/P-H-C/phc-string-format), as
// $argon2id$v=19$m=<KiB>,t=<iterations>,p=<lanes>$<salt>$<key> with unpadded
// standard base64, the form RFC 9106 implementations and the argon2 CLI share.
const (
	argon2idPrefix = "$argon2id$"
	argon2SaltLen  = 16 // RFC 9106 §3.1 recommends 128 bits
	argon2KeyLen   = 32

	// Bounds for parameters, whether configured or read from a stored hash.
	// A stored hash is data: a hostile or corrupt one must not make a login
	// allocate terabytes or spin for hours, so Verify refuses it before
	// calling argon2.
	maxMemoryKiB  = 4 << 20 // 4 GiB
	maxIterations = 100
	minSaltLen    = 8 // PHC string format minimum
	maxSaltLen    = 64
	minKeyLen     = 16
	maxKeyLen     = 64

	// bcrypt hashes are always 60 bytes: "$2b$", two cost digits, '$', 22
	// salt and 31 hash characters.
	bcryptHashLen = 60
	// maxBcryptCost bounds the work an imported hash can demand; cost 16 is
	// 2^16 rounds, seconds per check, far above what anyone deploys.
	maxBcryptCost = 16
)

// errMalformedHash is wrapped by every Verify error about the hash itself.
var errMalformedHash = errors.New("users: malformed password hash")

// Hasher hashes passwords with argon2id (RFC 9106). The zero value is not
// usable; start from DefaultHasher.
type Hasher struct {
	// Memory is the memory cost in KiB.
	Memory uint32
	// Iterations is the time cost (passes over memory).
	Iterations uint32
	// Parallelism is the number of lanes.
	Parallelism uint8
}

// DefaultHasher returns the OWASP Password Storage Cheat Sheet minimum for
// argon2id: 19 MiB of memory, 2 iterations, 1 lane.
func DefaultHasher() Hasher {
	return Hasher{Memory: 19456, Iterations: 2, Parallelism: 1}
}

// Validate reports every parameter outside the accepted bounds in one error,
// so a misconfiguration is fixed in one go.
func (h Hasher) Validate() error {
	var problems []string
	// argon2 needs 8 KiB per lane (RFC 9106 §3.1: m >= 8*p).
	if h.Parallelism < 1 {
		problems = append(problems, "parallelism must be at least 1")
	}
	if minMem := 8 * uint64(max(h.Parallelism, 1)); uint64(h.Memory) < minMem {
		problems = append(problems, fmt.Sprintf("memory must be at least %d KiB (8 KiB per lane), got %d", minMem, h.Memory))
	}
	if h.Memory > maxMemoryKiB {
		problems = append(problems, fmt.Sprintf("memory must be at most %d KiB (4 GiB), got %d", maxMemoryKiB, h.Memory))
	}
	if h.Iterations < 1 || h.Iterations > maxIterations {
		problems = append(problems, fmt.Sprintf("iterations must be between 1 and %d, got %d", maxIterations, h.Iterations))
	}
	if len(problems) > 0 {
		return errors.New("users: invalid argon2id parameters: " + strings.Join(problems, "; "))
	}
	return nil
}

// Hash returns an argon2id PHC string for password with a fresh random salt.
func (h Hasher) Hash(password string) (string, error) {
	if err := h.Validate(); err != nil {
		return "", err
	}
	salt := make([]byte, argon2SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("users: reading salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, h.Iterations, h.Memory, h.Parallelism, argon2KeyLen)
	return fmt.Sprintf("%sv=%d$m=%d,t=%d,p=%d$%s$%s", argon2idPrefix, argon2.Version,
		h.Memory, h.Iterations, h.Parallelism,
		base64.RawStdEncoding.EncodeToString(salt),
		base64.RawStdEncoding.EncodeToString(key)), nil
}

// Verify reports whether password matches hash. It accepts argon2id PHC
// strings with any parameters within bounds and bcrypt hashes ($2a$, $2b$,
// $2y$) imported from other systems; comparison is constant time.
// needsRehash is true when ok and the hash is not what h.Hash would produce
// now (bcrypt, or different argon2id parameters), so the caller can upgrade
// it while it knows the password. A malformed or out-of-bounds hash is an
// error, never a panic.
func (h Hasher) Verify(hash, password string) (ok, needsRehash bool, err error) {
	switch {
	case strings.HasPrefix(hash, argon2idPrefix):
		p, err := parseArgon2id(hash)
		if err != nil {
			return false, false, err
		}
		key := argon2.IDKey([]byte(password), p.salt, p.iterations, p.memory, p.parallelism, uint32(len(p.key)))
		if subtle.ConstantTimeCompare(key, p.key) != 1 {
			return false, false, nil
		}
		same := p.memory == h.Memory && p.iterations == h.Iterations && p.parallelism == h.Parallelism &&
			len(p.salt) == argon2SaltLen && len(p.key) == argon2KeyLen
		return true, !same, nil

	case isBcrypt(hash):
		if err := checkBcrypt(hash); err != nil {
			return false, false, err
		}
		switch err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)); {
		case err == nil:
			return true, true, nil
		case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
			return false, false, nil
		default:
			return false, false, fmt.Errorf("%w: %w", errMalformedHash, err)
		}

	default:
		return false, false, fmt.Errorf("%w: unsupported algorithm", errMalformedHash)
	}
}

// CheckHash reports whether hash is a password hash Verify accepts: an
// argon2id PHC string (as argon2-cffi, passlib and pwdlib write them) or
// a bcrypt hash ($2a$, $2b$, $2y$), its parameters within bounds. It is
// what an import checks before it stores a hash.
func CheckHash(hash string) error {
	switch {
	case strings.HasPrefix(hash, argon2idPrefix):
		_, err := parseArgon2id(hash)
		return err
	case isBcrypt(hash):
		return checkBcrypt(hash)
	case hash == "":
		return fmt.Errorf("%w: empty", errMalformedHash)
	}
	return fmt.Errorf("%w: unsupported algorithm (argon2id PHC strings and bcrypt $2a$, $2b$, $2y$ are)", errMalformedHash)
}

func isBcrypt(hash string) bool {
	return strings.HasPrefix(hash, "$2a$") || strings.HasPrefix(hash, "$2b$") || strings.HasPrefix(hash, "$2y$")
}

// checkBcrypt checks a bcrypt hash's length and cost.
func checkBcrypt(hash string) error {
	if len(hash) != bcryptHashLen {
		return fmt.Errorf("%w: bcrypt hash must be %d bytes", errMalformedHash, bcryptHashLen)
	}
	cost, err := bcrypt.Cost([]byte(hash))
	if err != nil {
		return fmt.Errorf("%w: %w", errMalformedHash, err)
	}
	if cost > maxBcryptCost {
		return fmt.Errorf("%w: bcrypt cost %d exceeds %d", errMalformedHash, cost, maxBcryptCost)
	}
	return nil
}

// argon2idParams is a decoded argon2id PHC string.
type argon2idParams struct {
	memory      uint32
	iterations  uint32
	parallelism uint8
	salt, key   []byte
}

// parseArgon2id decodes an argon2id PHC string strictly: version 19 only
// (the only one x/crypto/argon2 computes), parameters in the order m, t, p,
// and every number within the bounds Validate enforces.
func parseArgon2id(hash string) (argon2idParams, error) {
	var p argon2idParams
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, fmt.Errorf("%w: want $argon2id$v=..$m=..,t=..,p=..$salt$key", errMalformedHash)
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, fmt.Errorf("%w: unsupported argon2 version %q", errMalformedHash, parts[2])
	}
	params := strings.Split(parts[3], ",")
	if len(params) != 3 {
		return p, fmt.Errorf("%w: want parameters m, t and p", errMalformedHash)
	}
	m, err := parseParam(params[0], "m", 32)
	if err != nil {
		return p, err
	}
	t, err := parseParam(params[1], "t", 32)
	if err != nil {
		return p, err
	}
	par, err := parseParam(params[2], "p", 8)
	if err != nil {
		return p, err
	}
	p.memory, p.iterations, p.parallelism = uint32(m), uint32(t), uint8(par)
	if err := (Hasher{Memory: p.memory, Iterations: p.iterations, Parallelism: p.parallelism}).Validate(); err != nil {
		return p, fmt.Errorf("%w: %w", errMalformedHash, err)
	}
	if p.salt, err = base64.RawStdEncoding.Strict().DecodeString(parts[4]); err != nil {
		return p, fmt.Errorf("%w: salt: %w", errMalformedHash, err)
	}
	if len(p.salt) < minSaltLen || len(p.salt) > maxSaltLen {
		return p, fmt.Errorf("%w: salt must be %d to %d bytes", errMalformedHash, minSaltLen, maxSaltLen)
	}
	if p.key, err = base64.RawStdEncoding.Strict().DecodeString(parts[5]); err != nil {
		return p, fmt.Errorf("%w: key: %w", errMalformedHash, err)
	}
	if len(p.key) < minKeyLen || len(p.key) > maxKeyLen {
		return p, fmt.Errorf("%w: key must be %d to %d bytes", errMalformedHash, minKeyLen, maxKeyLen)
	}
	return p, nil
}

// parseParam parses "name=decimal" into an unsigned integer of bits size.
func parseParam(s, name string, bits int) (uint64, error) {
	v, ok := strings.CutPrefix(s, name+"=")
	// ParseUint accepts only digits, but "+1" or "01" would still make two
	// spellings of one hash; insist on the canonical one.
	if !ok || v == "" || (len(v) > 1 && v[0] == '0') {
		return 0, fmt.Errorf("%w: bad parameter %s", errMalformedHash, name)
	}
	n, err := strconv.ParseUint(v, 10, bits)
	if err != nil {
		return 0, fmt.Errorf("%w: bad parameter %s", errMalformedHash, name)
	}
	return n, nil
}
