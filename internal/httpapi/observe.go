package httpapi

import (
	"net/http"
	"net/netip"
	"time"

	"github.com/go-chi/chi/v5"
)

// RequestObserver counts finished requests (Prometheus in production).
type RequestObserver interface {
	ObserveRequest(route, method string, status int, d time.Duration)
}

// validRequestID accepts a caller's X-Request-Id only when it is short and
// plain, so logs never carry an attacker's control characters.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// server is the outermost handler. It gives each request its state (an id,
// the caller's X-Request-Id when acceptable, echoed back; chi's route
// context; the claims holder of the bearer validator, all in one
// allocation), runs the router,
// then writes one access-log record and counts the request. The record
// names the route pattern, never the raw path or query, which may carry
// secrets sent by mistake.
type server struct {
	mux     *chi.Mux
	access  AccessLogger
	obs     RequestObserver
	proxies []netip.Prefix
	// load follows the requests other than those to the token endpoint;
	// nil follows nothing.
	load *Load
}

// requestIDHeader is X-Request-Id in canonical form, to skip the
// canonicalisation of Header.Set on every request.
const requestIDHeader = "X-Request-Id"

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if s.load != nil && r.URL.Path != "/token" {
		s.load.start(start)
		defer s.load.done()
	}
	ctx := r.Context()
	var st *reqState
	if slot, _ := ctx.Value(connSlotKey{}).(*connSlot); slot != nil {
		if st = slot.take(ctx, r); st != nil {
			defer slot.release()
		}
	}
	if st == nil {
		st = &reqState{Context: ctx}
		r = r.WithContext(st)
	}
	id := r.Header.Get(requestIDHeader)
	if !validRequestID(id) {
		id = newRequestID()
	}
	st.id, st.idHdr[0] = id, id
	w.Header()[requestIDHeader] = st.idHdr[:]
	st.rctx.Routes = s.mux
	st.w.ResponseWriter = w
	st.w.start = start
	st.req = r
	s.mux.ServeHTTP(&st.w, r)

	d := time.Since(start)
	status := st.w.status
	if status == 0 {
		status = http.StatusOK
	}
	route := st.routePattern()
	if s.obs != nil {
		s.obs.ObserveRequest(route, r.Method, status, d)
	}
	st.rec = AccessRecord{
		Time:      start,
		RequestID: id,
		Method:    r.Method,
		Route:     route,
		Status:    status,
		Bytes:     st.w.bytes,
		Duration:  d,
		ClientIP:  requestAddr(r, s.proxies),
	}
	s.access.LogRequest(st, &st.rec)
}

// routePattern is the route chi matched, or the operation the validator
// matched when the request was refused before chi routed it; never the
// raw path.
func (s *reqState) routePattern() string {
	if p := s.rctx.RoutePattern(); p != "" {
		return p
	}
	if s.route != nil {
		return s.route.Path
	}
	return "unmatched"
}

// routeOf is the matched route pattern of r, never the raw path.
func routeOf(r *http.Request) string {
	if s := stateOf(r.Context()); s != nil {
		return s.routePattern()
	}
	if rctx := chi.RouteContext(r.Context()); rctx != nil && rctx.RoutePattern() != "" {
		return rctx.RoutePattern()
	}
	return "unmatched"
}
