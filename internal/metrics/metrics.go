// Package metrics holds gatehouse's Prometheus metrics, registered on a
// registry of its own (with the Go runtime and process collectors), and
// serves them at /metrics.
package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gatehouse/gatehouse/internal/audit"
)

// Metrics are the server's instruments.
type Metrics struct {
	reg *prometheus.Registry

	httpRequests  *prometheus.CounterVec
	httpDuration  *prometheus.HistogramVec
	tokenRequests *prometheus.CounterVec
	throttled     prometheus.Counter
	reuse         prometheus.Counter
	auditEvents   *prometheus.CounterVec
	hashDuration  prometheus.Histogram
	hashWait      prometheus.Histogram
	storeDuration *prometheus.HistogramVec

	// requestSeries holds the children of httpRequests and httpDuration
	// by requestKey, resolved once: the label hashing and lookup of
	// WithLabelValues and the status's strconv would otherwise run on
	// every request. Routes are patterns and statuses a few dozen, so it
	// stays small.
	requestSeries sync.Map
}

type requestKey struct {
	route, method string
	status        int
}

type requestSeries struct {
	count    prometheus.Counter
	duration prometheus.Observer
}

// New registers every instrument on a new registry.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_http_requests_total",
			Help: "HTTP requests by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gatehouse_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern and status.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route", "status"}),
		tokenRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_token_requests_total",
			Help: "Token endpoint requests by grant type and outcome.",
		}, []string{"grant_type", "outcome"}),
		throttled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_login_throttled_total",
			Help: "Password attempts refused by the login throttle.",
		}),
		reuse: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_refresh_reuse_detected_total",
			Help: "Rotated refresh tokens presented again (their families were revoked).",
		}),
		auditEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_audit_events_total",
			Help: "Audit events by event and outcome.",
		}, []string{"event", "outcome"}),
		hashDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gatehouse_password_hash_duration_seconds",
			Help:    "Time spent computing argon2id (or bcrypt) hashes.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1},
		}),
		hashWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gatehouse_password_hash_queue_wait_seconds",
			Help:    "Time a password check waited for a hashing slot.",
			Buckets: []float64{.0001, .001, .005, .01, .05, .1, .5, 1, 5},
		}),
		storeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gatehouse_store_duration_seconds",
			Help:    "Store call latency by operation and result.",
			Buckets: []float64{.0001, .0005, .001, .0025, .005, .01, .025, .05, .1, .5},
		}, []string{"op", "result"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.httpRequests, m.httpDuration, m.tokenRequests, m.throttled, m.reuse,
		m.auditEvents, m.hashDuration, m.hashWait, m.storeDuration,
	)
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// ObserveRequest counts one HTTP request. route is the matched pattern
// (never the raw path, which would make labels unbounded).
func (m *Metrics) ObserveRequest(route, method string, status int, d time.Duration) {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
	default:
		// Any token is a method to net/http: one label for the rest keeps
		// the series bounded.
		method = "OTHER"
	}
	k := requestKey{route, method, status}
	v, ok := m.requestSeries.Load(k)
	if !ok {
		code := strconv.Itoa(status)
		v, _ = m.requestSeries.LoadOrStore(k, &requestSeries{
			count:    m.httpRequests.WithLabelValues(route, method, code),
			duration: m.httpDuration.WithLabelValues(route, code),
		})
	}
	rs := v.(*requestSeries)
	rs.count.Inc()
	rs.duration.Observe(d.Seconds())
}

// CountAudit turns audit events into counters: every event by name and
// outcome, token requests by grant type, throttled logins and reuse
// detections.
func (m *Metrics) CountAudit(e audit.Event) {
	m.auditEvents.WithLabelValues(e.Name, e.Outcome).Inc()
	switch e.Name {
	case audit.Login:
		m.tokenRequests.WithLabelValues("password", e.Outcome).Inc()
		if e.Outcome == audit.Throttled {
			m.throttled.Inc()
		}
	case audit.Refresh:
		m.tokenRequests.WithLabelValues("refresh_token", e.Outcome).Inc()
		if e.Outcome == audit.ReuseDetected {
			m.reuse.Inc()
		}
	}
}

// ObserveHash records one password hash: how long it waited for a slot
// and how long it ran.
func (m *Metrics) ObserveHash(wait, run time.Duration) {
	m.hashWait.Observe(wait.Seconds())
	m.hashDuration.Observe(run.Seconds())
}

// ObserveStore records one store call; result is "ok", "not_found" or
// "error".
func (m *Metrics) ObserveStore(op string, d time.Duration, result string) {
	m.storeDuration.WithLabelValues(op, result).Observe(d.Seconds())
}

// CacheStats registers the verified-token cache's counters, read at
// scrape time.
func (m *Metrics) CacheStats(stats func() (hits, misses uint64, size int)) {
	m.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "gatehouse_token_cache_hits_total",
			Help: "Access tokens served from the verified-token cache.",
		}, func() float64 { h, _, _ := stats(); return float64(h) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "gatehouse_token_cache_misses_total",
			Help: "Access tokens whose signature had to be verified.",
		}, func() float64 { _, mi, _ := stats(); return float64(mi) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gatehouse_token_cache_entries",
			Help: "Entries in the verified-token cache.",
		}, func() float64 { _, _, n := stats(); return float64(n) }),
	)
}
