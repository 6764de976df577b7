package auth

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/users"
)

// pausedRead is one RevokedAccessTokens call of a heldLister, waiting for
// the test to answer it.
type pausedRead struct {
	answer chan<- listAnswer
}

type listAnswer struct {
	list []users.Revocation
	err  error
}

// reply lets the read return list (or err, if set).
func (r pausedRead) reply(list []users.Revocation, err error) {
	r.answer <- listAnswer{list: list, err: err}
}

// heldLister is a RevocationLister whose every read blocks until the test
// answers it: the hook between a Sync's store read and its swap.
type heldLister struct {
	reads chan pausedRead
}

func newHeldLister() *heldLister { return &heldLister{reads: make(chan pausedRead)} }

func (l *heldLister) RevokedAccessTokens(ctx context.Context, now time.Time) ([]users.Revocation, error) {
	answer := make(chan listAnswer)
	l.reads <- pausedRead{answer: answer}
	a := <-answer
	return a.list, a.err
}

// startSync runs d.Sync in a goroutine, waits until its store read is in
// flight and returns that read and the channel Sync's result arrives on.
func startSync(t *testing.T, d *DenyList, l *heldLister) (pausedRead, <-chan error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- d.Sync(context.Background()) }()
	return <-l.reads, done
}

func wantSynced(t *testing.T, done <-chan error) {
	t.Helper()
	if err := <-done; err != nil {
		t.Fatalf("Sync: %v", err)
	}
}

func wantRevoked(t *testing.T, d *DenyList, jti string, want bool, when string) {
	t.Helper()
	if got := d.Revoked(jti); got != want {
		t.Errorf("%s: Revoked(%q) = %v, want %v", when, jti, got, want)
	}
}

func TestDenyList_rfc7009_revocation_survives_a_concurrent_stale_resync(t *testing.T) {
	l := newHeldLister()
	now := time.Now()
	d := NewDenyList(l, func() time.Time { return now })
	exp := now.Add(time.Hour)

	// A periodic resync reads the store before /revoke commits...
	read, done := startSync(t, d, l)
	// ...and /revoke records the revocation in this process...
	d.Add("jti-revoked", exp)
	wantRevoked(t, d, "jti-revoked", true, "right after Add")
	// ...before the resync installs what it read.
	read.reply([]users.Revocation{{JTI: "jti-other", ExpiresAt: exp}}, nil)
	wantSynced(t, done)

	wantRevoked(t, d, "jti-revoked", true, "after the stale resync")
	wantRevoked(t, d, "jti-other", true, "after the stale resync")
}

func TestDenyList_rfc7009_older_resync_never_replaces_a_newer_one(t *testing.T) {
	l := newHeldLister()
	now := time.Now()
	d := NewDenyList(l, func() time.Time { return now })
	revoked := []users.Revocation{{JTI: "jti-revoked", ExpiresAt: now.Add(time.Hour)}}

	// The periodic resync reads the store before the revocation commits.
	stale, staleDone := startSync(t, d, l)
	// The revocation commits; another process's announcement (or a bulk
	// revocation here) starts a Sync that reads it and finishes first.
	fresh, freshDone := startSync(t, d, l)
	fresh.reply(revoked, nil)
	wantSynced(t, freshDone)
	wantRevoked(t, d, "jti-revoked", true, "after the fresh resync")

	// The stale resync finishes last: its list predates the fresh one's.
	stale.reply(nil, nil)
	wantSynced(t, staleDone)
	wantRevoked(t, d, "jti-revoked", true, "after the stale resync finished last")
}

func TestDenyList_rfc7009_add_survives_overlapping_resyncs(t *testing.T) {
	l := newHeldLister()
	now := time.Now()
	d := NewDenyList(l, func() time.Time { return now })

	first, firstDone := startSync(t, d, l)
	second, secondDone := startSync(t, d, l)
	d.Add("jti-revoked", now.Add(time.Hour))
	// Both reads predate the Add; they finish in the order they started,
	// and the second is still in flight when the first installs.
	first.reply(nil, nil)
	wantSynced(t, firstDone)
	wantRevoked(t, d, "jti-revoked", true, "after the first stale resync")
	second.reply(nil, nil)
	wantSynced(t, secondDone)
	wantRevoked(t, d, "jti-revoked", true, "after the second stale resync")
}

func TestDenyList_rfc7009_failed_resync_keeps_the_list(t *testing.T) {
	l := newHeldLister()
	now := time.Now()
	d := NewDenyList(l, func() time.Time { return now })
	d.Add("jti-before", now.Add(time.Hour))

	read, done := startSync(t, d, l)
	d.Add("jti-during", now.Add(time.Hour))
	storeDown := errors.New("store unavailable")
	read.reply(nil, storeDown)
	if err := <-done; !errors.Is(err, storeDown) {
		t.Fatalf("Sync: got %v, want %v", err, storeDown)
	}
	wantRevoked(t, d, "jti-before", true, "after a failed resync")
	wantRevoked(t, d, "jti-during", true, "after a failed resync")
}

func TestDenyList_rfc7009_resync_after_the_race_follows_the_store(t *testing.T) {
	l := newHeldLister()
	now := time.Now()
	d := NewDenyList(l, func() time.Time { return now })
	exp := now.Add(time.Hour)

	read, done := startSync(t, d, l)
	d.Add("jti-revoked", exp)
	read.reply(nil, nil)
	wantSynced(t, done)

	// The Adds kept for the race are not kept forever: a resync whose read
	// started after them installs the store's list as it is, here with
	// jti-revoked expired and gone.
	read, done = startSync(t, d, l)
	read.reply([]users.Revocation{{JTI: "jti-other", ExpiresAt: exp}}, nil)
	wantSynced(t, done)
	wantRevoked(t, d, "jti-revoked", false, "after a resync that no longer lists it")
	wantRevoked(t, d, "jti-other", true, "after a resync that lists it")
}

func TestDenyList_rfc7009_revocation_outlives_exp_by_the_leeway(t *testing.T) {
	// The validator accepts a token up to DefaultLeeway past its exp, so a
	// resync must not forget its revocation before that.
	f := newFixture(t, AlgRS256, nil)
	f.createUser(t, "dave", "correct horse", "me")
	r := f.grant(t, TokenRequest{GrantType: GrantPassword, Username: "dave", Password: "correct horse"})
	if err := f.issuer.Revoke(context.Background(), RevocationRequest{Token: r.AccessToken}); err != nil {
		t.Fatal(err)
	}
	f.now = f.now.Add(testTTL + DefaultLeeway/2)
	if err := f.deny.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.validator.Verify(r.AccessToken); err == nil {
		t.Fatal("a revoked token within the leeway past its exp is accepted after a resync")
	}
	if !f.deny.Revoked(decodeSegment(t, r.AccessToken, 1)["jti"].(string)) {
		t.Error("the resync dropped the revocation within the leeway")
	}
}
