package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
	"github.com/gatehouse/gatehouse/internal/users"
)

// Clients is the registry of OAuth 2.0 clients (RFC 6749 §2): who may
// call the token endpoint and how it authenticates.
type Clients struct {
	store storage.ClientStore
	known map[string]bool
	now   func() time.Time
	// afterRevoke, when set, runs after a deletion revoked sessions, so
	// this process's revocation view learns it before the call returns.
	afterRevoke func(ctx context.Context)
}

// NewClients returns the registry over store; scopes are the scopes the
// server knows.
func NewClients(store storage.ClientStore, scopes []string, now func() time.Time, afterRevoke func(ctx context.Context)) *Clients {
	if now == nil {
		now = time.Now
	}
	known := make(map[string]bool, len(scopes))
	for _, s := range scopes {
		known[s] = true
	}
	return &Clients{store: store, known: known, now: now, afterRevoke: afterRevoke}
}

// checkScopes returns scopes sorted and deduplicated (never nil), or a
// *users.ValidationError for field naming every unknown scope.
func (r *Clients) checkScopes(field string, scopes []string) ([]string, error) {
	var unknown []string
	out := []string{}
	for _, sc := range scopes {
		if !r.known[sc] {
			unknown = append(unknown, fmt.Sprintf("%q", sc))
			continue
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	if len(unknown) > 0 {
		return nil, &users.ValidationError{Field: field, Message: "unknown scope " + strings.Join(unknown, ", ")}
	}
	slices.Sort(out)
	return out, nil
}

const (
	// clientIDBytes and clientSecretBytes are the random bytes of a
	// generated client_id and of a client secret (256 bits, so a fast hash
	// of it cannot be brute-forced; see Client.SecretHash).
	clientIDBytes     = 16
	clientSecretBytes = 32
)

// NewClient is the input of RegisterClient.
type NewClient struct {
	// ID is the client_id: 1 to 128 characters from A-Z, a-z, 0-9, '.',
	// '_', '~' and '-' (RFC 3986 unreserved, safe in a URL and a Basic
	// auth user-id). Empty means generate one.
	ID string
	// Confidential clients get a secret (RFC 6749 §2.1).
	Confidential bool
	// Scopes must all be known; empty means the client may request any.
	Scopes []string
	// ServiceScopes are the scopes the client holds itself, with its own
	// credentials and for no user (tokens:introspect lets it introspect,
	// RFC 7662 §2.1). They must be known, and only a confidential client
	// may hold any.
	ServiceScopes []string
}

// RegisterClient adds a client (RFC 6749 §2). An empty ID is replaced by
// 16 random bytes in unpadded base64url. A confidential client gets a
// 256-bit random secret, unpadded base64url, which is returned here once
// and stored only as its hex SHA-256; a public client's secret is "".
// Returns a *ValidationError for field "client_id", "scopes" or
// "service_scopes", or ErrClientExists.
func (r *Clients) RegisterClient(ctx context.Context, nc NewClient) (c *storage.Client, secret string, err error) {
	id := nc.ID
	if id == "" {
		id = randomBase64URL(clientIDBytes)
	} else if err := checkClientID(id); err != nil {
		return nil, "", err
	} else if reservedClientID(id) {
		return nil, "", &users.ValidationError{Field: "client_id", Message: fmt.Sprintf("%q is reserved", id)}
	}
	scopes, err := r.checkScopes("scopes", nc.Scopes)
	if err != nil {
		return nil, "", err
	}
	service, err := r.checkScopes("service_scopes", nc.ServiceScopes)
	if err != nil {
		return nil, "", err
	}
	if len(service) > 0 && !nc.Confidential {
		return nil, "", &users.ValidationError{Field: "service_scopes", Message: "only a confidential client may hold scopes itself"}
	}
	c = &storage.Client{ID: id, Scopes: scopes, ServiceScopes: service, CreatedAt: r.now().UTC()}
	if nc.Confidential {
		secret = randomBase64URL(clientSecretBytes)
		c.SecretHash = hashClientSecret(secret)
	}
	if err := r.store.CreateClient(ctx, c); err != nil {
		return nil, "", err
	}
	return c, secret, nil
}

// AuthenticateClient checks a client's credentials (RFC 6749 §2.3.1). A
// confidential client must present its secret, a public one none.
// Returns ErrNotFound for an unknown (or impossible) client_id, and
// users.ErrInvalidCredentials for a wrong, missing or unexpected secret.
func (r *Clients) AuthenticateClient(ctx context.Context, id, secret string) (*storage.Client, error) {
	if checkClientID(id) != nil {
		return nil, storage.ErrNotFound
	}
	c, err := r.store.ClientByID(ctx, id)
	if err != nil {
		return nil, err
	}
	if !c.Confidential() {
		if secret != "" {
			return nil, users.ErrInvalidCredentials
		}
		return c, nil
	}
	// Both sides are hex SHA-256, so equally long: the comparison's time
	// depends on neither secret.
	if secret == "" || subtle.ConstantTimeCompare([]byte(hashClientSecret(secret)), []byte(c.SecretHash)) != 1 {
		return nil, users.ErrInvalidCredentials
	}
	return c, nil
}

// ListClients returns every client ordered by ID.
func (r *Clients) ListClients(ctx context.Context) ([]*storage.Client, error) {
	return r.store.ListClients(ctx)
}

// DeleteClient removes the client and revokes every session issued to
// it, or returns storage.ErrNotFound.
func (r *Clients) DeleteClient(ctx context.Context, id string) error {
	if checkClientID(id) != nil {
		return storage.ErrNotFound
	}
	if err := r.store.DeleteClient(ctx, id, r.now().UTC()); err != nil {
		return err
	}
	if r.afterRevoke != nil {
		r.afterRevoke(ctx)
	}
	return nil
}

// reservedClientID reports whether id is one gatehouse uses itself,
// compared case-insensitively so no look-alike can be registered either.
func reservedClientID(id string) bool {
	return strings.EqualFold(id, PublicClientID)
}

// checkClientID returns a *ValidationError for field "client_id" unless id
// is 1 to 128 characters from A-Za-z0-9._~-.
func checkClientID(id string) error {
	if id == "" || len(id) > maxClientIDLen {
		return &users.ValidationError{Field: "client_id", Message: fmt.Sprintf("must be 1 to %d characters long", maxClientIDLen)}
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("._~-", c) >= 0) {
			return &users.ValidationError{Field: "client_id", Message: "may contain only letters, digits, '.', '_', '~' and '-'"}
		}
	}
	return nil
}

// randomBase64URL returns n bytes from crypto/rand in unpadded base64url.
func randomBase64URL(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never returns an error; it crashes the program instead
	return base64.RawURLEncoding.EncodeToString(b)
}

// hashClientSecret is the stored form of a client secret: hex SHA-256.
func hashClientSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}
