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
	addr, _ := clientAddrOf(r, trusted)
	return addr
}

// clientAddrOf is clientAddr, and whether the address is the peer's own:
// one that depends on nothing but r.RemoteAddr.
func clientAddrOf(r *http.Request, trusted []netip.Prefix) (string, bool) {
	host, peer := remoteIP(r.RemoteAddr)
	if !peer.IsValid() {
		return r.RemoteAddr, true
	}
	if !isTrusted(peer, trusted) {
		if peer.Is4() && !strings.Contains(host, ":") {
			// netip parses IPv4 only in its canonical dotted form, so
			// the text is what String would allocate.
			return host, true
		}
		return peer.String(), true
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
	return addr.String(), false
}

// requestAddr is clientAddr, worked out once per request: the access log
// and the login throttle both need it. When it is the peer's own address
// it is also kept for the connection's next requests, which come from
// the same peer; one through a trusted proxy is worked out anew from each
// request's X-Forwarded-For.
func requestAddr(r *http.Request, trusted []netip.Prefix) string {
	s := stateOf(r.Context())
	if s == nil {
		return clientAddr(r, trusted)
	}
	if s.addr != "" {
		return s.addr
	}
	c := s.conn
	if c != nil && c.peerAddr != "" && c.remoteAddr == r.RemoteAddr {
		s.addr = c.peerAddr
		return s.addr
	}
	addr, peerOnly := clientAddrOf(r, trusted)
	s.addr = addr
	if c != nil && peerOnly {
		c.remoteAddr, c.peerAddr = r.RemoteAddr, addr
	}
	return addr
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
