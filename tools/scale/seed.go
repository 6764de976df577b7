package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/internal/auth"
	"github.com/gatehouse/gatehouse/internal/storage"
	"github.com/google/uuid"
)

// probeUsername is the user whose login is refreshed and whose token calls
// /users/me: it has no seeded sessions, so its rows are the probe's own.
const probeUsername = "scale-probe"

// seedSpec is what one store gets.
type seedSpec struct {
	// Slug names the store's files: "empty", "seeded".
	Slug string
	// Users are created with these indices (userName); each with a live
	// session when Sessions is set.
	Users    []int
	Sessions bool
	// RevokedSessions more sessions are spread over Users and revoked;
	// RevokedTokens access-token revocations are recorded.
	RevokedSessions int
	RevokedTokens   int
	// Hash is every seeded user's password hash (one precomputed argon2id
	// string: seeding must not pay argon2 per user).
	Hash    string
	Workers int
	// Timeout bounds the seeding.
	Timeout time.Duration
}

// seeded is what a seeding made.
type seeded struct {
	ProbeID         string
	Users           int // probe included
	LiveSessions    int
	RevokedSessions int
	RevokedTokens   int
	Took            time.Duration
}

// userName is the username of seeded user i.
func userName(i int) string { return fmt.Sprintf("user%06d", i) }

// seed fills st through the storage API only, with spec.Workers
// goroutines, printing progress to logw every 10 s.
func seed(ctx context.Context, st storage.Store, spec seedSpec, logw io.Writer, label string) (*seeded, error) {
	ctx, cancel := context.WithTimeout(ctx, spec.Timeout)
	defer cancel()
	start := time.Now()
	now := start
	out := &seeded{}

	probe := &storage.User{ID: uuid.NewString(), Username: probeUsername, PasswordHash: spec.Hash, Scopes: []string{"me"}}
	if err := st.CreateUser(ctx, probe); err != nil {
		return nil, fmt.Errorf("seed %s: probe user: %w", label, err)
	}
	out.ProbeID = probe.ID

	// extra[k] is how many revoked sessions user k gets.
	extra := make([]int, len(spec.Users))
	if len(spec.Users) > 0 {
		for k := range extra {
			extra[k] = spec.RevokedSessions / len(spec.Users)
		}
		for k := 0; k < spec.RevokedSessions%len(spec.Users); k++ {
			extra[k]++
		}
	}

	var done, revoked, live, tokens atomic.Int64
	stop := make(chan struct{})
	var progress sync.WaitGroup
	progress.Go(func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				fmt.Fprintf(logw, "scale: seeding %s: %d/%d users, %d revoked sessions, %d/%d revoked tokens, %s\n",
					label, done.Load(), len(spec.Users), revoked.Load(), tokens.Load(), spec.RevokedTokens, time.Since(start).Round(time.Second))
			}
		}
	})
	defer func() { close(stop); progress.Wait() }()

	// Users, their live session and their revoked ones: one worker per
	// slice of users, each user's writes in order.
	err := parallel(ctx, spec.Workers, len(spec.Users), func(ctx context.Context, k int) error {
		u := &storage.User{ID: uuid.NewString(), Username: userName(spec.Users[k]), PasswordHash: spec.Hash, Scopes: []string{"me"}}
		if err := st.CreateUser(ctx, u); err != nil {
			return fmt.Errorf("create user %s: %w", u.Username, err)
		}
		var keep string
		if spec.Sessions {
			s := newSession(u.ID, now)
			if err := st.CreateSession(ctx, s, 0, nil); err != nil {
				return fmt.Errorf("create session of %s: %w", u.Username, err)
			}
			keep = s.ID
			live.Add(1)
		}
		for range extra[k] {
			if err := st.CreateSession(ctx, newSession(u.ID, now), 0, nil); err != nil {
				return fmt.Errorf("create session of %s: %w", u.Username, err)
			}
		}
		if extra[k] > 0 {
			// Every session of the user but the live one: one transaction,
			// one ChangeSession entry per session.
			n, err := st.RevokeSessions(ctx, u.ID, "", keep, now)
			if err != nil {
				return fmt.Errorf("revoke sessions of %s: %w", u.Username, err)
			}
			if n != extra[k] {
				return fmt.Errorf("revoke sessions of %s: revoked %d, want %d", u.Username, n, extra[k])
			}
			revoked.Add(int64(n))
		}
		done.Add(1)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("seed %s after %s: %w", label, time.Since(start).Round(time.Second), err)
	}

	// RFC 7009 revocations of access tokens, live for an hour.
	exp := now.Add(time.Hour)
	err = parallel(ctx, spec.Workers, spec.RevokedTokens, func(ctx context.Context, _ int) error {
		if err := st.RevokeToken(ctx, uuid.NewString(), exp, now); err != nil {
			return err
		}
		tokens.Add(1)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("seed %s after %s: revoke tokens: %w", label, time.Since(start).Round(time.Second), err)
	}

	// What the server will load: check the store holds it.
	live2, err := st.LiveRevocations(ctx, time.Now())
	if err != nil {
		return nil, fmt.Errorf("seed %s: live revocations: %w", label, err)
	}
	for _, c := range live2 {
		switch c.Kind {
		case storage.ChangeSession:
			out.RevokedSessions++
		case storage.ChangeToken:
			out.RevokedTokens++
		}
	}
	if out.RevokedSessions != spec.RevokedSessions || out.RevokedTokens != spec.RevokedTokens {
		return nil, fmt.Errorf("seed %s: the store holds %d revoked sessions and %d revoked tokens, want %d and %d",
			label, out.RevokedSessions, out.RevokedTokens, spec.RevokedSessions, spec.RevokedTokens)
	}
	n, err := st.CountUsers(ctx)
	if err != nil {
		return nil, fmt.Errorf("seed %s: count users: %w", label, err)
	}
	out.Users, out.LiveSessions, out.Took = n, int(live.Load()), time.Since(start)
	return out, nil
}

// newSession is a login of user as the server would store it (public
// client, scope "me", the default lifetimes); its secret is thrown away,
// so it is never refreshed.
func newSession(userID string, now time.Time) *storage.Session {
	id := make([]byte, 16)
	rand.Read(id)
	secret := make([]byte, 32)
	rand.Read(secret)
	h := sha256.Sum256(secret)
	return &storage.Session{
		ID:            base64.RawURLEncoding.EncodeToString(id),
		UserID:        userID,
		ClientID:      auth.PublicClientID,
		Scopes:        []string{"me"},
		CreatedAt:     now,
		LastUsedAt:    now,
		IdleExpiresAt: now.Add(30 * 24 * time.Hour),
		ExpiresAt:     now.Add(90 * 24 * time.Hour),
		SecretHash:    hex.EncodeToString(h[:]),
		RotatedAt:     now,
		ClientAddr:    "127.0.0.1",
		UserAgent:     "gatehouse-scale",
	}
}

// parallel runs fn(k) for k in [0, n) on workers goroutines and returns
// the first error, after which the others stop taking work.
func parallel(ctx context.Context, workers, n int, fn func(ctx context.Context, k int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Go(func() {
			for ctx.Err() == nil {
				k := int(next.Add(1) - 1)
				if k >= n {
					return
				}
				if err := fn(ctx, k); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}
