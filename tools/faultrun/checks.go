package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// graceWindow is GATEHOUSE_REFRESH_REUSE_WINDOW's default, which the
// servers here run with.
const graceWindow = 10 * time.Second

// adminToken logs in as the bootstrap admin, retrying for up to 30 s.
func adminToken(ctx context.Context, c *client) (string, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		t, a := c.login(ctx, "admin", adminPassword)
		if a.status == http.StatusOK {
			return t.AccessToken, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return "", fmt.Errorf("the admin login on replica %s failed for 30 s (last: %d %s %v)", c.name, a.status, a.body, a.err)
		}
		sleep(ctx, 250*time.Millisecond)
	}
}

// checkUsers asks for every user in names as admin; it returns those not
// answered 200, with what they were answered (a fault is retried).
func checkUsers(ctx context.Context, c *client, admin string, names []string) map[string]string {
	missing := map[string]string{}
	var mu sync.Mutex
	work := make(chan string)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for name := range work {
				var a answer
				for try := 0; try < 5; try++ {
					a = c.do(ctx, epGetUser, http.MethodGet, "/users/"+url.PathEscape(name), admin, "", nil)
					if a.status == http.StatusOK || a.status == http.StatusNotFound || ctx.Err() != nil {
						break
					}
					sleep(ctx, 500*time.Millisecond)
				}
				if a.status != http.StatusOK {
					what := fmt.Sprint(a.status)
					if a.err != nil {
						what = a.err.Error()
					}
					mu.Lock()
					missing[name] = what
					mu.Unlock()
				}
			}
		})
	}
	for _, n := range names {
		work <- n
	}
	close(work)
	wg.Wait()
	return missing
}

func missingList(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for n, what := range m {
		out = append(out, n+" ("+what+")")
	}
	sort.Strings(out)
	return out
}

// feedChecks revokes a fresh login through each replica and times how
// soon the next one refuses its access token.
func feedChecks(ctx context.Context, cs []*client) []feed {
	var out []feed
	for i := range cs {
		out = append(out, feedCheck(ctx, cs[i], cs[(i+1)%len(cs)]))
	}
	return out
}

func feedCheck(ctx context.Context, via, on *client) feed {
	f := feed{via: via.name, on: on.name}
	var t tokens
	deadline := time.Now().Add(20 * time.Second)
	for {
		var a answer
		if t, a = via.login(ctx, "admin", adminPassword); a.status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			f.err = fmt.Sprintf("no login on %s for 20 s (last %d)", via.name, a.status)
			return f
		}
		sleep(ctx, 250*time.Millisecond)
	}
	accepted := false
	for until := time.Now().Add(5 * time.Second); time.Now().Before(until) && ctx.Err() == nil; sleep(ctx, 50*time.Millisecond) {
		if on.me(ctx, t.AccessToken).status == http.StatusOK {
			accepted = true
			break
		}
	}
	if !accepted {
		f.err = fmt.Sprintf("replica %s did not accept a fresh access token from %s within 5 s", on.name, via.name)
		return f
	}
	a := via.form(ctx, epRevoke, "/revoke", url.Values{"token": {t.RefreshToken}, "token_type_hint": {"refresh_token"}})
	if a.status != http.StatusOK {
		f.err = fmt.Sprintf("POST /revoke on %s answered %d %s", via.name, a.status, a.body)
		return f
	}
	revoked := time.Now()
	for time.Since(revoked) < 5*time.Second && ctx.Err() == nil {
		if on.me(ctx, t.AccessToken).status == http.StatusUnauthorized {
			f.took = time.Since(revoked)
			return f
		}
		sleep(ctx, 20*time.Millisecond)
	}
	f.took = -1
	return f
}

// checkChains presents the last acknowledged refresh token of every
// chain still alive (it must rotate), and explains every chain that
// ended while the load ran.
func (e *runEnv) checkChains(ctx context.Context, r *result, c *client, chains []chain) {
	r.chains = len(chains)
	r.chainData = chains
	for _, ch := range chains {
		r.retriedOK += len(ch.retried)
		if ch.ended == "" {
			_, a := c.refresh(ctx, ch.last)
			if a.status == http.StatusOK {
				r.chainsOK++
				continue
			}
			r.lostChains = append(r.lostChains, fmt.Sprintf("chain %d (%s): its last acknowledged refresh token (answered 200 at t=%+.2f s) was refused afterwards: %d %s",
				ch.id, ch.user, ch.lastAt.Sub(r.t0).Seconds(), a.status, strings.TrimSpace(string(a.body))))
			continue
		}
		r.endedChains = append(r.endedChains, explainEnded(r, ch))
	}
}

// explainEnded says how a chain ended, and whether that was the design
// (a retry past the grace window is reuse, README "The grace window") or
// a loss (an acknowledged token refused without any failed attempt, or a
// retry inside the window refused).
func explainEnded(r *result, ch chain) string {
	rel := func(t time.Time) float64 { return t.Sub(r.t0).Seconds() }
	var b strings.Builder
	fmt.Fprintf(&b, "chain %d (%s): after %d acknowledged tokens (the last answered at t=%+.2f s), ", ch.id, ch.user, ch.acked, rel(ch.lastAt))
	if len(ch.steps) == 0 {
		fmt.Fprintf(&b, "ended: %s", ch.ended)
		return b.String()
	}
	first, final := ch.steps[0], ch.steps[len(ch.steps)-1]
	st := counts{}
	for _, s := range ch.steps[:len(ch.steps)-1] {
		if s.status == 0 {
			st["no answer"]++
		} else {
			st[fmt.Sprint(s.status)]++
		}
	}
	gap := final.sent.Sub(first.sent)
	if len(ch.steps) == 1 {
		fmt.Fprintf(&b, "its refresh at t=%+.2f s answered %s", rel(first.sent), ch.ended)
	} else {
		fmt.Fprintf(&b, "its refresh failed from t=%+.2f s (first X-Request-Id %s; %s) and the retry with the same parent at t=%+.2f s (%.1f s later, X-Request-Id %s) answered %s",
			rel(first.sent), first.rid, st, rel(final.sent), gap.Seconds(), final.rid, ch.ended)
	}
	reused := strings.Contains(ch.ended, "already used")
	switch {
	case reused && len(ch.steps) == 1:
		b.WriteString(" — LOST: an acknowledged token was taken as reused without any failed attempt")
		r.lostChains = append(r.lostChains, b.String())
	case reused && gap < graceWindow-500*time.Millisecond:
		b.WriteString(" — LOST: a retry inside the grace window was taken as reuse")
		r.lostChains = append(r.lostChains, b.String())
	case reused:
		b.WriteString(" — a failed attempt had rotated the session after all (its answer was lost) and the retry came after the 10 s grace window, so it counts as reuse and the login ended (the README's rule, but the client lost a login the server had acknowledged)")
		r.reuseAfterLost++
	case strings.HasPrefix(ch.ended, "still failing"):
		b.WriteString(" — the store never took the refresh again")
		r.lostChains = append(r.lostChains, b.String())
	}
	return b.String()
}
