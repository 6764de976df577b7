package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/getkin/kin-openapi/routers"
	"github.com/go-chi/chi/v5"

	"github.com/gatehouse/gatehouse/internal/auth"
)

// reqState is what gatehouse keeps for one request, in one allocation: it
// is the request's context (answering chi's route context key, so chi
// does not add a context of its own), the operation the validator
// matched, the request itself for the form endpoints, the writer that
// records the status for the access log and the metrics, and the bearer
// validator's claims holder (answering auth.HolderKey). Before it, each
// request copied *http.Request four times (the access log, chi, the
// validator and the strict handler each added a context value).
type reqState struct {
	context.Context
	id    string
	idHdr [1]string // the X-Request-Id header's value: id
	addr  string    // the client address, once worked out (requestAddr)
	route *routers.Route
	req   *http.Request
	rctx  chi.Context
	w     statusWriter
	rec   AccessRecord
	// claims is the bearer validator's holder (auth.HolderKey).
	claims auth.ClaimsHolder
	// conn is the connection's slot the state belongs to, nil for a
	// state of its own.
	conn *connSlot
}

type stateKey struct{}

// connSlot is a connection's context (http.Server.ConnContext) holding
// the state of the request the connection is serving. An HTTP/1.x
// connection serves its requests one after another, so one reqState per
// connection, reset after each request, saves two allocations a request
// (the state and the request's copy that WithContext makes), most of
// what a /healthz answer allocated. While no request uses it (between
// requests, or on an HTTP/2 connection, whose concurrent streams each
// get a state of their own), it answers none of reqState's keys.
type connSlot struct {
	context.Context
	busy atomic.Bool
	st   reqState
	// peerAddr is the client address of the connection's peer, worked
	// out from remoteAddr (requestAddr): the same for each request of the
	// connection unless a trusted proxy forwards it.
	remoteAddr, peerAddr string
}

// ConnContext is the http.Server.ConnContext that lets HTTP/1.x requests
// reuse their connection's request state. Without it each request's
// state is allocated anew, with the same behaviour.
func ConnContext(ctx context.Context, _ net.Conn) context.Context {
	return &connSlot{Context: ctx}
}

type connSlotKey struct{}

// Value answers reqState's keys with the state of the request being
// served, when there is one, and every other key from the parent.
func (c *connSlot) Value(key any) any {
	switch key {
	case connSlotKey{}:
		return c
	case chi.RouteCtxKey, stateKey{}, auth.HolderKey:
		if c.busy.Load() {
			return c.st.Value(key)
		}
		return nil
	}
	return c.Context.Value(key)
}

// take returns the connection's state for r, a request of ctx, or nil
// when r must get one of its own (not HTTP/1.x, or the state is in use).
func (c *connSlot) take(ctx context.Context, r *http.Request) *reqState {
	if r.ProtoMajor != 1 || !c.busy.CompareAndSwap(false, true) {
		return nil
	}
	c.st.Context = ctx
	c.st.conn = c
	return &c.st
}

// release clears the state after its request, keeping the capacity of
// chi's route context, and frees the slot for the connection's next
// request. Nothing of a request outlives it in the slot.
func (c *connSlot) release() {
	rctx := c.st.rctx
	rctx.Reset()
	c.st = reqState{rctx: rctx}
	c.busy.Store(false)
}

// Value answers the keys reqState carries and passes every other key to
// the parent, as context.WithValue would.
func (s *reqState) Value(key any) any {
	switch key {
	case chi.RouteCtxKey:
		return &s.rctx
	case stateKey{}:
		return s
	case auth.HolderKey:
		return &s.claims
	}
	return s.Context.Value(key)
}

// stateOf returns the request's state, nil for a request that did not come
// through the server's outer handler (a handler test calling a handler
// directly).
func stateOf(ctx context.Context) *reqState {
	if s, ok := ctx.(*reqState); ok {
		return s
	}
	s, _ := ctx.Value(stateKey{}).(*reqState)
	return s
}

// requestID returns the request's id, "" outside a request.
func requestID(ctx context.Context) string {
	if s := stateOf(ctx); s != nil {
		return s.id
	}
	return ""
}

// statusWriter records the status and the bytes of a response. It passes
// Flush on (server-sent bodies of the docs), and Unwrap lets
// http.ResponseController reach the connection's writer.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int
	// start is when the request's handling began (the access record's
	// time), set by the server's outer handler.
	start time.Time
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
		w.setDate()
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
		w.setDate()
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += n
	return n, err
}

func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
		w.setDate()
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// setDate gives the response its Date header (RFC 9110 §6.6.1) as the
// headers are about to be sent, from dates, unless the handler set one.
// net/http would format it anew for every response: 2.4% of a /healthz
// answer's CPU in a profile of the server under wrk. The time is the
// request's start plus the time since on the monotonic clock: one clock
// read instead of the two of time.Now, which is one of the costlier
// calls of a request on a virtual machine.
func (w *statusWriter) setDate() {
	h := w.Header()
	if _, ok := h["Date"]; !ok {
		h["Date"] = dates.at(w.start.Add(time.Since(w.start)))
	}
}

// dates is the Date header's value for the current second, formatted once
// per second rather than once per response.
var dates dateCache

type dateCache struct{ cur atomic.Pointer[dateStamp] }

type dateStamp struct {
	sec   int64
	value []string // len == cap, so an Add appends to a copy
}

// at returns the Date header's value for now: http.TimeFormat in UTC, to
// the second.
func (c *dateCache) at(now time.Time) []string {
	sec := now.Unix()
	if s := c.cur.Load(); s != nil && s.sec == sec {
		return s.value
	}
	s := &dateStamp{sec: sec, value: []string{now.UTC().Format(http.TimeFormat)}}
	c.cur.Store(s)
	return s.value
}

// Request ids are a random prefix chosen at start and a counter: unique
// within the process and, by the prefix, across replicas with high
// probability, at the cost of one string per request instead of a read
// of the system's random source. They are correlation ids, not secrets.
var (
	idPrefix  = newIDPrefix()
	idCounter atomic.Uint64
)

func newIDPrefix() (p [12]byte) {
	var b [6]byte
	_, _ = rand.Read(b[:])
	hex.Encode(p[:], b[:])
	return p
}

// newRequestID returns 24 hex digits: the prefix, then the counter's low
// 48 bits.
func newRequestID() string {
	var b [24]byte
	copy(b[:], idPrefix[:])
	n := idCounter.Add(1)
	const digits = "0123456789abcdef"
	for i := 23; i >= 12; i-- {
		b[i] = digits[n&0xf]
		n >>= 4
	}
	return string(b[:])
}
