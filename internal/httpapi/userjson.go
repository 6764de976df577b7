package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sync"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// The answers of GET /users/me and GET /healthz, encoded ahead of the
// requests.

// userJSONLimit bounds the encoded users kept: past it the cache starts
// again empty. Entries are keyed by the user view's accounts, which the
// view replaces (never changes) when an account changes, so an old
// version's entry is never used again and the limit is what frees it.
const userJSONLimit = 4096

// userJSON keeps GET /users/me's body for each account of the user view,
// encoded once: encoding/json's reflection over the account was a
// quarter of an authenticated request's own work.
type userJSON struct {
	mu sync.RWMutex
	m  map[*storage.User]*encodedUser
}

// encodedUser is the answer GET /users/me gives for one account: the same
// bytes as GetCurrentUser200JSONResponse's, which encodes them again for
// every request. Handlers return it by pointer: a pointer goes into the
// response interface without an allocation, a slice would not.
type encodedUser struct{ body []byte }

func (b *encodedUser) VisitGetCurrentUserResponse(w http.ResponseWriter) error {
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(b.body)
	return err
}

var jsonContentType = []string{"application/json"}

// get returns u's encoded answer; u must be the user view's account (shared
// and never changed).
func (c *userJSON) get(u *storage.User) (*encodedUser, error) {
	c.mu.RLock()
	b, ok := c.m[u]
	c.mu.RUnlock()
	if ok {
		return b, nil
	}
	b, err := encodeUser(u)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= userJSONLimit {
		c.m = make(map[*storage.User]*encodedUser)
	}
	c.m[u] = b
	c.mu.Unlock()
	return b, nil
}

// encodeUser encodes u as the generated response does (json.Encoder, its
// trailing newline included).
func encodeUser(u *storage.User) (*encodedUser, error) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(GetCurrentUser200JSONResponse(toUser(u))); err != nil {
		return nil, err
	}
	return &encodedUser{buf.Bytes()}, nil
}

// encodedHealth is /healthz's answer, which never changes: the bytes
// GetHealth200JSONResponse would encode on every request (returned by
// pointer, as encodedUser is).
type encodedHealth struct{ body []byte }

func newHealth(version string) (*encodedHealth, error) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(GetHealth200JSONResponse{Status: "ok", Version: &version}); err != nil {
		return nil, err
	}
	return &encodedHealth{buf.Bytes()}, nil
}

func (b *encodedHealth) VisitGetHealthResponse(w http.ResponseWriter) error {
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(b.body)
	return err
}
