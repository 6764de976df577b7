package httpapi

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// clientAddr is the address a request comes from: the connection's peer,
// or, when that peer is a trusted proxy, the nearest address in
// X-Forwarded-For that is not itself a trusted proxy. Without trusted
// proxies the header is ignored, since any client can write it.
func clientAddr(r *http.Request, trusted []netip.Prefix) string {
	host, peer := remoteIP(r.RemoteAddr)
	if !peer.IsValid() {
		return r.RemoteAddr
	}
	if !isTrusted(peer, trusted) {
		if peer.Is4() && !strings.Contains(host, ":") {
			// netip parses IPv4 only in its canonical dotted form, so
			// the text is what String would allocate.
			return host
		}
		return peer.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	addr := peer
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		addr = hop.Unmap()
		if !isTrusted(addr, trusted) {
			break
		}
	}
	return addr.String()
}

// requestAddr is clientAddr, worked out once per request: the access log
// and the login throttle both need it.
func requestAddr(r *http.Request, trusted []netip.Prefix) string {
	s := stateOf(r.Context())
	if s == nil {
		return clientAddr(r, trusted)
	}
	if s.addr == "" {
		s.addr = clientAddr(r, trusted)
	}
	return s.addr
}

// remoteIP parses the peer address of a connection, returning its host
// part as written too.
func remoteIP(remote string) (string, netip.Addr) {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host, netip.Addr{}
	}
	return host, a.Unmap()
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
