package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/gatehouse/gatehouse/internal/storage"
	"github.com/gatehouse/gatehouse/internal/users"
)

// Clients is the registry of OAuth 2.0 clients (RFC 6749 §2): who may
// call the token endpoint and how it authenticates.
type Clients struct {
	store storage.ClientStore
	known map[string]bool
	now   func() time.Time
	// afterChange, when set, runs after a change or a deletion (which
	// revokes sessions), so this process's revocation and client views
	// learn it before the call returns.
	afterChange func(ctx context.Context)
}

// NewClients returns the registry over store; scopes are the scopes the
// server knows.
func NewClients(store storage.ClientStore, scopes []string, now func() time.Time, afterChange func(ctx context.Context)) *Clients {
	if now == nil {
		now = time.Now
	}
	known := make(map[string]bool, len(scopes))
	for _, s := range scopes {
		known[s] = true
	}
	return &Clients{store: store, known: known, now: now, afterChange: afterChange}
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
	// secretIDBytes are the random bytes of a secret's id, in hex.
	secretIDBytes = 16
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
	// Grants are the grant types it may use beyond the password and
	// refresh grants: GrantClientCredentials, for a confidential client.
	Grants []string
}

// RegisterClient adds a client (RFC 6749 §2). An empty ID is replaced by
// 16 random bytes in unpadded base64url. A confidential client gets a
// 256-bit random secret, unpadded base64url, which is returned here once
// and stored only as its hex SHA-256; a public client's secret is "".
// Returns a *ValidationError for field "client_id", "scopes",
// "service_scopes" or "grants", or ErrClientExists.
func (r *Clients) RegisterClient(ctx context.Context, nc NewClient) (c *storage.Client, secret string, err error) {
	id := nc.ID
	if id == "" {
		id = randomBase64URL(clientIDBytes)
	} else if err := checkClientID(id); err != nil {
		return nil, "", err
	} else if reservedClientID(id) {
		return nil, "", &users.ValidationError{Field: "client_id", Message: fmt.Sprintf("%q is reserved", id)}
	} else if userIDForm(id) {
		return nil, "", &users.ValidationError{Field: "client_id", Message: "must not have the form of a user id (a UUID): a client's own tokens carry its client_id as sub"}
	}
	c = &storage.Client{ID: id, CreatedAt: r.now().UTC(), Secrets: []storage.ClientSecret{}}
	if nc.Confidential {
		var sec storage.ClientSecret
		secret, sec = newClientSecret(c.CreatedAt)
		c.Secrets = append(c.Secrets, sec)
	}
	if err := r.checkLists(c, nc.Scopes, nc.ServiceScopes, nc.Grants); err != nil {
		return nil, "", err
	}
	if err := r.store.CreateClient(ctx, c); err != nil {
		return nil, "", err
	}
	r.changed(ctx)
	return c, secret, nil
}

// checkLists validates and sets a client's scopes, service scopes and
// grants, returning a *ValidationError naming the field at fault.
func (r *Clients) checkLists(c *storage.Client, scopes, service, grants []string) error {
	scopes, err := r.checkScopes("scopes", scopes)
	if err != nil {
		return err
	}
	service, err = r.checkScopes("service_scopes", service)
	if err != nil {
		return err
	}
	if len(service) > 0 && !c.Confidential() {
		return &users.ValidationError{Field: "service_scopes", Message: "only a confidential client may hold scopes itself"}
	}
	var out []string
	for _, g := range grants {
		if g != GrantClientCredentials {
			return &users.ValidationError{Field: "grants", Message: fmt.Sprintf("unknown grant %q: the password and refresh grants need no entry, and %q is the only other", g, GrantClientCredentials)}
		}
		if !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	if len(out) > 0 && !c.Confidential() {
		return &users.ValidationError{Field: "grants", Message: "only a confidential client may use the client-credentials grant (RFC 6749 §4.4)"}
	}
	if out == nil {
		out = []string{}
	}
	c.Scopes, c.ServiceScopes, c.Grants = scopes, service, out
	return nil
}

// newClientSecret returns a new 256-bit secret and its stored form.
func newClientSecret(now time.Time) (string, storage.ClientSecret) {
	secret := randomBase64URL(clientSecretBytes)
	return secret, storage.ClientSecret{ID: randomHex(secretIDBytes), Hash: hashClientSecret(secret), CreatedAt: now}
}

// AuthenticateClient checks a client's credentials (RFC 6749 §2.3.1). A
// confidential client must present one of its secrets, a public one none;
// secretID names the secret that matched ("" for a public client).
// Returns ErrNotFound for an unknown (or impossible) client_id, and
// users.ErrInvalidCredentials for a wrong, missing or unexpected secret.
func (r *Clients) AuthenticateClient(ctx context.Context, id, secret string) (c *storage.Client, secretID string, err error) {
	if checkClientID(id) != nil {
		return nil, "", storage.ErrNotFound
	}
	c, err = r.store.ClientByID(ctx, id)
	if err != nil {
		return nil, "", err
	}
	if !c.Confidential() {
		if secret != "" {
			return nil, "", users.ErrInvalidCredentials
		}
		return c, "", nil
	}
	if secret == "" {
		return nil, "", users.ErrInvalidCredentials
	}
	if secretID = matchSecret(c, secret); secretID == "" {
		return nil, "", users.ErrInvalidCredentials
	}
	return c, secretID, nil
}

// matchSecret returns the id of the client's secret that secret is, or "".
// Every secret is compared, in constant time: both sides are hex SHA-256,
// so equally long, and the time depends on neither secret nor on which
// one matched.
func matchSecret(c *storage.Client, secret string) string {
	hash := []byte(hashClientSecret(secret))
	matched := ""
	for _, sec := range c.Secrets {
		if subtle.ConstantTimeCompare(hash, []byte(sec.Hash)) == 1 {
			matched = sec.ID
		}
	}
	return matched
}

// ClientUpdate changes a client; nil fields stay as they are.
type ClientUpdate struct {
	Scopes        *[]string
	ServiceScopes *[]string
	Grants        *[]string
}

// UpdateClient changes a client's scopes, service scopes or grants.
// Tokens of the client-credentials grant that the change no longer allows
// stop at once on every replica, through the client view. Returns
// storage.ErrNotFound or a *ValidationError.
func (r *Clients) UpdateClient(ctx context.Context, id string, up ClientUpdate) (*storage.Client, error) {
	if checkClientID(id) != nil {
		return nil, storage.ErrNotFound
	}
	c, err := r.store.UpdateClient(ctx, id, func(c *storage.Client) error {
		scopes, service, grants := c.Scopes, c.ServiceScopes, c.Grants
		if up.Scopes != nil {
			scopes = *up.Scopes
		}
		if up.ServiceScopes != nil {
			service = *up.ServiceScopes
		}
		if up.Grants != nil {
			grants = *up.Grants
		}
		return r.checkLists(c, scopes, service, grants)
	})
	if err != nil {
		return nil, err
	}
	r.changed(ctx)
	return c, nil
}

// MaxClientSecrets is how many secrets a client may hold at once: the
// current one and its successor while a service rotates.
const MaxClientSecrets = 2

// ErrTooManySecrets refuses a third secret; ErrLastSecret the removal of
// a confidential client's only secret; ErrPublicClient a secret for a
// public client.
var (
	ErrTooManySecrets = errors.New("the client already holds two secrets: remove one first")
	ErrLastSecret     = errors.New("the client's only secret cannot be removed: add another first, or delete the client")
	ErrPublicClient   = errors.New("a public client has no secret")
)

// AddClientSecret gives a confidential client a new secret beside its
// current one, returned here once. Returns storage.ErrNotFound,
// ErrPublicClient or ErrTooManySecrets.
func (r *Clients) AddClientSecret(ctx context.Context, id string) (storage.ClientSecret, string, error) {
	if checkClientID(id) != nil {
		return storage.ClientSecret{}, "", storage.ErrNotFound
	}
	secret, sec := newClientSecret(r.now().UTC())
	_, err := r.store.UpdateClient(ctx, id, func(c *storage.Client) error {
		switch {
		case !c.Confidential():
			return ErrPublicClient
		case len(c.Secrets) >= MaxClientSecrets:
			return ErrTooManySecrets
		}
		c.Secrets = append(c.Secrets, sec)
		return nil
	})
	if err != nil {
		return storage.ClientSecret{}, "", err
	}
	r.changed(ctx)
	return sec, secret, nil
}

// RemoveClientSecret removes one of a client's secrets: it authenticates
// nothing from then on, and the client-credentials tokens it obtained
// stop. Returns storage.ErrNotFound (no such client or secret) or
// ErrLastSecret.
func (r *Clients) RemoveClientSecret(ctx context.Context, id, secretID string) error {
	if checkClientID(id) != nil {
		return storage.ErrNotFound
	}
	_, err := r.store.UpdateClient(ctx, id, func(c *storage.Client) error {
		i := slices.IndexFunc(c.Secrets, func(s storage.ClientSecret) bool { return s.ID == secretID })
		switch {
		case i < 0:
			return storage.ErrNotFound
		case len(c.Secrets) == 1:
			return ErrLastSecret
		}
		c.Secrets = slices.Delete(c.Secrets, i, i+1)
		return nil
	})
	if err != nil {
		return err
	}
	r.changed(ctx)
	return nil
}

func (r *Clients) changed(ctx context.Context) {
	if r.afterChange != nil {
		r.afterChange(ctx)
	}
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
	r.changed(ctx)
	return nil
}

// reservedClientID reports whether id is one gatehouse uses itself,
// compared case-insensitively so no look-alike can be registered either.
func reservedClientID(id string) bool {
	return strings.EqualFold(id, PublicClientID)
}

// userIDForm reports whether id has the form user ids take (a UUID in
// its 36-character text form). Tokens of the client-credentials grant
// carry the client_id as `sub` (RFC 9068 §2.2), so a client with such an
// id could obtain tokens a resource server takes for a user's (RFC 9068
// §5): no client may have one.
func userIDForm(id string) bool {
	return len(id) == 36 && uuid.Validate(id) == nil
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
	return base64.RawURLEncoding.EncodeToString(randomBytes(n))
}

// randomHex returns n bytes from crypto/rand in lowercase hex.
func randomHex(n int) string { return hex.EncodeToString(randomBytes(n)) }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never returns an error; it crashes the program instead
	return b
}

// hashClientSecret is the stored form of a client secret: hex SHA-256, as
// a refresh token's secret is stored.
func hashClientSecret(secret string) string { return secretHash([]byte(secret)) }
