package httpapi

import (
	"context"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientAddr(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32")}
	for _, tc := range []struct {
		name, remote, xff string
		trusted           []netip.Prefix
		want              string
	}{
		{"no_proxy_uses_the_peer", "203.0.113.7:5000", "", nil, "203.0.113.7"},
		{"forwarded_for_from_an_untrusted_peer_is_ignored", "203.0.113.7:5000", "198.51.100.1", proxies, "203.0.113.7"},
		{"forwarded_for_ignored_without_trusted_proxies", "127.0.0.1:5000", "198.51.100.1", nil, "127.0.0.1"},
		{"trusted_proxy_forwards_the_client", "10.1.2.3:5000", "198.51.100.1", proxies, "198.51.100.1"},
		{"spoofed_leftmost_entries_are_skipped", "10.1.2.3:5000", "1.1.1.1, 198.51.100.1, 10.9.9.9", proxies, "198.51.100.1"},
		{"garbage_hop_stops_at_the_last_good_one", "10.1.2.3:5000", "not-an-ip", proxies, "10.1.2.3"},
		{"ipv4_mapped_ipv6_peer", "[::ffff:203.0.113.7]:5000", "", nil, "203.0.113.7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/token", nil)
			r.RemoteAddr = tc.remote
			if tc.xff != "" {
				r.Header.Set("X-Forwarded-For", tc.xff)
			}
			if got := clientAddr(r, tc.trusted); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// A connection keeps its peer's address for its next requests, but not
// one a trusted proxy forwarded (each request names its own client), and
// never for a request from another peer.
func TestRequestAddr_kept_per_connection_only_for_the_peer_itself(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	slot := ConnContext(context.Background(), nil).(*connSlot)
	for i, tc := range []struct{ remote, xff, want string }{
		{"203.0.113.7:5000", "", "203.0.113.7"},
		{"203.0.113.7:5000", "198.51.100.1", "203.0.113.7"}, // untrusted peer: its header counts for nothing
		{"198.51.100.9:6000", "", "198.51.100.9"},
		{"10.1.2.3:5000", "198.51.100.1", "198.51.100.1"},
		{"10.1.2.3:5000", "198.51.100.2", "198.51.100.2"},
		{"10.1.2.3:5000", "", "10.1.2.3"},
	} {
		r := httptest.NewRequest("GET", "/healthz", nil).WithContext(slot)
		r.RemoteAddr = tc.remote
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		st := slot.take(slot, r)
		if st == nil {
			t.Fatalf("request %d: the connection's state is in use", i)
		}
		if got := requestAddr(r, proxies); got != tc.want {
			t.Errorf("request %d from %s (X-Forwarded-For %q): got %s, want %s", i, tc.remote, tc.xff, got, tc.want)
		}
		slot.release()
	}
}
