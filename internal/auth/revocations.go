package auth

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// ChangeFeed is what the revocation state reads from the store's change
// log (storage.ChangeLog).
type ChangeFeed interface {
	LastChange(ctx context.Context) (int64, error)
	Changes(ctx context.Context, after int64, limit int) ([]storage.Change, error)
	LiveRevocations(ctx context.Context, now time.Time) ([]storage.Change, error)
}

// feedPage is how many log entries one read fetches.
const feedPage = 1000

// Revocations is every process's in-memory view of what ends tokens
// before their `exp`: revoked sessions (by `sid`), single revoked access
// tokens (by `jti`, RFC 7009), changed users (through the UserView) and
// changed clients (through the ClientView),
// kept in step with the store's change log. It is loaded once (Load) and
// then applies only the entries after its cursor (Sync, Run), so its cost
// follows the changes, not the state: an idle process reads one indexed
// "changes since" query per interval. Entries stay until they expire,
// which the store sets past the last instant a token they concern could
// still be accepted.
type Revocations struct {
	feed    ChangeFeed
	users   *UserView
	clients *ClientView
	now     func() time.Time
	// keysChanged, when set, runs after entries about signing keys.
	keysChanged func(ctx context.Context)
	// reloadAfter: a process that has not read the log for this long may
	// have missed pruned entries, and loads everything again.
	reloadAfter time.Duration

	// syncMu makes one read of the log at a time, so entries apply in
	// order and the cursor only moves forward.
	syncMu   sync.Mutex
	cursor   int64
	lastRead time.Time

	mu       sync.RWMutex
	sessions map[string]time.Time // sid → until
	tokens   map[string]time.Time // jti → until
}

// RevocationsConfig configures NewRevocations.
type RevocationsConfig struct {
	// Users is invalidated on entries about users; nil means none.
	Users *UserView
	// Clients is invalidated on entries about clients; nil means none.
	Clients *ClientView
	// KeysChanged runs after entries about signing keys.
	KeysChanged func(ctx context.Context)
	// Retention is how long the store keeps session and user entries
	// (sqlstore.Options.ChangeRetention); a process that has not read the
	// log for half of it loads everything again. Zero means an hour.
	Retention time.Duration
	Now       func() time.Time
}

// NewRevocations returns an empty view over feed; call Load.
func NewRevocations(feed ChangeFeed, cfg RevocationsConfig) *Revocations {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Retention <= 0 {
		cfg.Retention = time.Hour
	}
	return &Revocations{
		feed: feed, users: cfg.Users, clients: cfg.Clients, now: cfg.Now, keysChanged: cfg.KeysChanged,
		reloadAfter: cfg.Retention / 2,
		sessions:    map[string]time.Time{}, tokens: map[string]time.Time{},
	}
}

// SessionRevoked reports whether the session with that id was revoked.
func (r *Revocations) SessionRevoked(sid string) bool {
	r.mu.RLock()
	_, ok := r.sessions[sid]
	r.mu.RUnlock()
	return ok
}

// TokenRevoked reports whether the access token with that jti was revoked.
func (r *Revocations) TokenRevoked(jti string) bool {
	r.mu.RLock()
	_, ok := r.tokens[jti]
	r.mu.RUnlock()
	return ok
}

// Load reads the state in full: the cursor first, then every live
// revocation, so an entry committed in between is read twice (harmless)
// rather than missed.
func (r *Revocations) Load(ctx context.Context) error {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	return r.load(ctx)
}

func (r *Revocations) load(ctx context.Context) error {
	cursor, err := r.feed.LastChange(ctx)
	if err != nil {
		return err
	}
	now := r.now()
	live, err := r.feed.LiveRevocations(ctx, now)
	if err != nil {
		return err
	}
	sessions := make(map[string]time.Time, len(live))
	tokens := map[string]time.Time{}
	for _, c := range live {
		switch c.Kind {
		case storage.ChangeSession:
			sessions[c.Subject] = c.ExpiresAt
		case storage.ChangeToken:
			tokens[c.Subject] = c.ExpiresAt
		}
	}
	r.mu.Lock()
	// Only additions can have happened since (Sync holds syncMu), so the
	// full state replaces the old one.
	r.sessions, r.tokens = sessions, tokens
	r.mu.Unlock()
	if r.users != nil {
		r.users.Clear()
	}
	if r.clients != nil {
		r.clients.Clear()
	}
	r.cursor, r.lastRead = cursor, now
	return nil
}

// Sync applies every entry committed before it was called. Callers that
// revoked something call it before answering, so this process refuses the
// token from that moment on.
func (r *Revocations) Sync(ctx context.Context) error {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	now := r.now()
	if now.Sub(r.lastRead) > r.reloadAfter {
		// Entries may have been pruned unread: start again from the state.
		return r.load(ctx)
	}
	for {
		page, err := r.feed.Changes(ctx, r.cursor, feedPage)
		if err != nil {
			return err
		}
		r.apply(ctx, page)
		if len(page) < feedPage {
			break
		}
	}
	r.lastRead = now
	return nil
}

func (r *Revocations) apply(ctx context.Context, page []storage.Change) {
	if len(page) == 0 {
		return
	}
	keys := false
	r.mu.Lock()
	for _, c := range page {
		switch c.Kind {
		case storage.ChangeSession:
			r.sessions[c.Subject] = c.ExpiresAt
		case storage.ChangeToken:
			r.tokens[c.Subject] = c.ExpiresAt
		case storage.ChangeKeys:
			keys = true
		}
		r.cursor = c.Seq
	}
	r.mu.Unlock()
	for _, c := range page {
		switch {
		case c.Kind == storage.ChangeUser && r.users != nil:
			r.users.Invalidate(c.Subject)
		case c.Kind == storage.ChangeClient && r.clients != nil:
			r.clients.Invalidate(c.Subject)
		}
	}
	if keys && r.keysChanged != nil {
		r.keysChanged(ctx)
	}
}

// Prune drops entries that expired.
func (r *Revocations) Prune() {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, until := range r.sessions {
		if now.After(until) {
			delete(r.sessions, id)
		}
	}
	for id, until := range r.tokens {
		if now.After(until) {
			delete(r.tokens, id)
		}
	}
}

// Len reports how many revoked sessions and tokens are held.
func (r *Revocations) Len() (sessions, tokens int) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.sessions), len(r.tokens)
}

// Run follows the log until ctx is done: a read every interval, and one
// at once whenever wake delivers (another process announced a change).
func (r *Revocations) Run(ctx context.Context, interval time.Duration, wake <-chan struct{}, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	prune := time.NewTicker(time.Minute)
	defer prune.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-prune.C:
			r.Prune()
			continue
		case <-t.C:
		case <-wake:
		}
		if err := r.Sync(ctx); err != nil && ctx.Err() == nil && log != nil {
			log.Warn("reading the change log failed", "err", err)
		}
	}
}
