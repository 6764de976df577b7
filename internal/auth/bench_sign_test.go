package auth

import (
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/storage"
	"github.com/gatehouse/gatehouse/internal/users"
)

// BenchmarkSign is the reference rate for the refresh grant: one access
// token signed the way the issuer signs it (Issuer.issue: a fresh jti, the
// RFC 9068 claims, the configured key from Keys.Signer), with nothing
// stored. scripts/bench.sh runs it with -cpu 1 on the server's core, so
// 1e9/ns_per_op is the signing rate of one core.
func BenchmarkSign(b *testing.B) {
	for _, alg := range []string{AlgRS256, AlgEdDSA} {
		b.Run(alg, func(b *testing.B) {
			f := newBenchFixture(b, alg, users.Hasher{Memory: 64, Iterations: 1, Parallelism: 1})
			u := &storage.User{ID: "0b6b7c5e-3f0e-4d55-9a0b-7d2f0f7b1c11", Username: "alice", Scopes: []string{"me"}}
			c := client{id: PublicClientID}
			scopes := []string{"me"}
			sid := newSessionID()
			b.ReportAllocs()
			for b.Loop() {
				resp, err := f.issuer.issue(u, c, scopes, sid, time.Now())
				if err != nil {
					b.Fatal(err)
				}
				if resp.AccessToken == "" {
					b.Fatal("no access token")
				}
			}
		})
	}
}
