package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// The encoded answer is byte for byte what the generated response writes,
// and a new version of an account gets its own.
func TestUserJSONMatchesGenerated(t *testing.T) {
	var c userJSON
	u := &storage.User{ID: "id-1", Username: "alice", Scopes: []string{"me", "<script>"}, CreatedAt: time.Date(2026, 12, 2, 1, 2, 3, 4, time.UTC)}
	for _, account := range []*storage.User{u, {ID: "id-1", Username: "alice", Disabled: true, CreatedAt: u.CreatedAt}} {
		want := httptest.NewRecorder()
		if err := GetCurrentUser200JSONResponse(toUser(account)).VisitGetCurrentUserResponse(want); err != nil {
			t.Fatal(err)
		}
		for range 2 { // encoded, then from the cache
			b, err := c.get(account)
			if err != nil {
				t.Fatal(err)
			}
			got := httptest.NewRecorder()
			if err := b.VisitGetCurrentUserResponse(got); err != nil {
				t.Fatal(err)
			}
			if got.Code != want.Code || !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) || got.Header().Get("Content-Type") != want.Header().Get("Content-Type") {
				t.Fatalf("got %d %q %s, want %d %q %s", got.Code, got.Header().Get("Content-Type"), got.Body, want.Code, want.Header().Get("Content-Type"), want.Body)
			}
		}
		var decoded map[string]any
		if err := json.Unmarshal(want.Body.Bytes(), &decoded); err != nil || decoded["disabled"] != account.Disabled {
			t.Fatalf("answer %s does not describe the account", want.Body)
		}
	}
}

// The cache never holds more than its limit.
func TestUserJSONBounded(t *testing.T) {
	var c userJSON
	for i := range userJSONLimit + 10 {
		if _, err := c.get(&storage.User{ID: "id", Username: "u", CreatedAt: time.Unix(int64(i), 0)}); err != nil {
			t.Fatal(err)
		}
		if len(c.m) > userJSONLimit {
			t.Fatalf("%d entries, limit %d", len(c.m), userJSONLimit)
		}
	}
}

// /healthz's encoded answer is the generated response's.
func TestHealthMatchesGenerated(t *testing.T) {
	version := "v1.2.3 \"<dev>\""
	b, err := newHealth(version)
	if err != nil {
		t.Fatal(err)
	}
	got, want := httptest.NewRecorder(), httptest.NewRecorder()
	if err := b.VisitGetHealthResponse(got); err != nil {
		t.Fatal(err)
	}
	if err := (GetHealth200JSONResponse{Status: "ok", Version: &version}).VisitGetHealthResponse(want); err != nil {
		t.Fatal(err)
	}
	if got.Code != want.Code || got.Body.String() != want.Body.String() || got.Header().Get("Content-Type") != want.Header().Get("Content-Type") {
		t.Fatalf("got %d %s, want %d %s", got.Code, got.Body, want.Code, want.Body)
	}
}
