package httpapi

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// AccessRecord is one line of the access log.
type AccessRecord struct {
	Time      time.Time
	RequestID string
	Method    string
	Route     string
	Status    int
	Bytes     int
	Duration  time.Duration
	ClientIP  string
}

// AccessLogger writes the access log. The server writes one record per
// request, so an implementation should not allocate per record. Neither
// ctx nor rec may be kept after LogRequest returns: both belong to the
// request's state, which the connection's next request reuses.
type AccessLogger interface {
	LogRequest(ctx context.Context, rec *AccessRecord)
}

// slogAccessLog writes access records as "request" records of a logger,
// in whatever format its handler has: the default.
type slogAccessLog struct{ log *slog.Logger }

func (l slogAccessLog) LogRequest(ctx context.Context, rec *AccessRecord) {
	if !l.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	l.log.LogAttrs(ctx, slog.LevelInfo, "request",
		slog.String("request_id", rec.RequestID),
		slog.String("method", rec.Method),
		slog.String("route", rec.Route),
		slog.Int("status", rec.Status),
		slog.Int("bytes", rec.Bytes),
		slog.Float64("duration_ms", durationMS(rec.Duration)),
		slog.String("client_ip", rec.ClientIP),
	)
}

// durationMS is a duration in milliseconds, to the microsecond.
func durationMS(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// JSONAccessLog writes access records to w as the lines slog's
// JSONHandler writes for them (same keys, order and value formats), one
// Write per record, formatted into a recycled buffer. Formatting through
// slog cost about a third of a /healthz request's own work; the access
// log is the one record written for every request, so it has this path
// of its own. Every other record still goes through slog.
func JSONAccessLog(w io.Writer) AccessLogger { return &jsonAccessLog{w: w} }

type jsonAccessLog struct{ w io.Writer }

var accessBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func (l *jsonAccessLog) LogRequest(_ context.Context, rec *AccessRecord) {
	bp := accessBuffers.Get().(*[]byte)
	b := appendAccessJSON((*bp)[:0], rec)
	_, _ = l.w.Write(b)
	*bp = b
	accessBuffers.Put(bp)
}

// appendAccessJSON appends rec as slog's JSONHandler would write a
// "request" record at INFO with its attributes, newline included.
func appendAccessJSON(b []byte, rec *AccessRecord) []byte {
	b = append(b, `{"time":"`...)
	b = stamps.appendRFC3339Nano(b, rec.Time)
	b = append(b, `","level":"INFO","msg":"request","request_id":`...)
	b = appendJSONString(b, rec.RequestID)
	b = append(b, `,"method":`...)
	b = appendJSONString(b, rec.Method)
	b = append(b, `,"route":`...)
	b = appendJSONString(b, rec.Route)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(rec.Status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, int64(rec.Bytes), 10)
	b = append(b, `,"duration_ms":`...)
	b = appendMS(b, rec.Duration)
	b = append(b, `,"client_ip":`...)
	b = appendJSONString(b, rec.ClientIP)
	return append(b, "}\n"...)
}

// appendMS appends d as durationMS(d) appears in slog's JSON: what
// strconv.AppendFloat writes in the 'f' format with the fewest digits
// (json.Marshal uses no exponent from 1e-6 on), from integers. A
// duration in whole microseconds is a number of milliseconds with at most
// three decimals, which float64 holds closely enough that those decimals,
// trailing zeros dropped, are its shortest form, up to some 35 years;
// beyond that the float is formatted as before.
func appendMS(b []byte, d time.Duration) []byte {
	us := d.Microseconds()
	if us >= 1<<50 || us <= -1<<50 {
		return strconv.AppendFloat(b, durationMS(d), 'f', -1, 64)
	}
	if us < 0 {
		b = append(b, '-')
		us = -us
	}
	b = strconv.AppendInt(b, us/1000, 10)
	frac := us % 1000
	if frac == 0 {
		return b
	}
	digits := [4]byte{'.', byte('0' + frac/100), byte('0' + frac/10%10), byte('0' + frac%10)}
	n := len(digits)
	for digits[n-1] == '0' {
		n--
	}
	return append(b, digits[:n]...)
}

// stamps is the access log's clock: the date, the time of day to the
// second and the zone of the current second, formatted once per second
// rather than once per line.
var stamps stampCache

type stampCache struct{ cur atomic.Pointer[stamp] }

type stamp struct {
	sec    int64
	loc    *time.Location
	prefix []byte // 2006-01-02T15:04:05
	zone   []byte // Z07:00
}

// appendRFC3339Nano appends t as t.AppendFormat(b, time.RFC3339Nano)
// does: the cached second, then the nanoseconds without their trailing
// zeros (none at all when they are zero), then the zone.
func (c *stampCache) appendRFC3339Nano(b []byte, t time.Time) []byte {
	sec, loc := t.Unix(), t.Location()
	s := c.cur.Load()
	if s == nil || s.sec != sec || s.loc != loc {
		s = &stamp{sec: sec, loc: loc, prefix: t.AppendFormat(nil, "2006-01-02T15:04:05"), zone: t.AppendFormat(nil, "Z07:00")}
		c.cur.Store(s)
	}
	b = append(b, s.prefix...)
	if ns := t.Nanosecond(); ns != 0 {
		var frac [10]byte
		frac[0] = '.'
		for i := 9; i > 0; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := len(frac)
		for frac[n-1] == '0' {
			n--
		}
		b = append(b, frac[:n]...)
	}
	return append(b, s.zone...)
}

// appendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped, invalid UTF-8 as U+FFFD, as encoding/json
// and slog write them (without their HTML escaping, which slog turns off
// too).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
