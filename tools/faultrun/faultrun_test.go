package main

import (
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// echoServer echoes every connection on 127.0.0.1 and counts them.
func echoServer(t *testing.T) (addr string, accepted *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted = &atomic.Int64{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return ln.Addr().String(), accepted
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	p, err := newProxy(target, 10)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg and reads as many bytes back within d.
func roundTrip(c net.Conn, msg string, d time.Duration) (string, error) {
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	return readFor(c, len(msg), d)
}

func readFor(c net.Conn, n int, d time.Duration) (string, error) {
	c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	buf := make([]byte, n)
	got, err := io.ReadFull(c, buf)
	return string(buf[:got]), err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestProxy_forwards_both_ways(t *testing.T) {
	target, _ := echoServer(t)
	p := startProxy(t, target)
	c := dial(t, p.Addr())
	if got, err := roundTrip(c, "hello", time.Second); got != "hello" || err != nil {
		t.Fatalf("got %q, %v; want the echo", got, err)
	}
}

func TestProxy_refuse_cuts_every_connection_and_closes_the_port_until_accept(t *testing.T) {
	target, _ := echoServer(t)
	p := startProxy(t, target)
	c := dial(t, p.Addr())
	if got, _ := roundTrip(c, "before", time.Second); got != "before" {
		t.Fatalf("before Refuse: got %q", got)
	}

	p.Refuse()
	if _, err := readFor(c, 1, time.Second); err == nil || isTimeout(err) {
		t.Errorf("an open connection after Refuse: read err %v, want it cut", err)
	}
	if c2, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		c2.Close()
		t.Errorf("dialling after Refuse succeeded, want refused")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dialling after Refuse: %v, want connection refused", err)
	}

	if err := p.Accept(); err != nil {
		t.Fatal(err)
	}
	c3 := dial(t, p.Addr())
	if got, err := roundTrip(c3, "after", time.Second); got != "after" || err != nil {
		t.Errorf("after Accept: got %q, %v; want the echo", got, err)
	}
}

func TestProxy_freeze_holds_bytes_both_ways_and_thaw_delivers_them(t *testing.T) {
	target, _ := echoServer(t)
	p := startProxy(t, target)
	c := dial(t, p.Addr())
	if got, _ := roundTrip(c, "warm", time.Second); got != "warm" {
		t.Fatalf("before Freeze: got %q", got)
	}

	p.Freeze()
	if got, err := roundTrip(c, "held", 300*time.Millisecond); got != "" || !isTimeout(err) {
		t.Fatalf("while frozen: got %q, %v; want nothing back", got, err)
	}
	if p.Conns() != 1 {
		t.Errorf("while frozen: %d connections, want the one kept open", p.Conns())
	}
	p.Thaw()
	if got, err := readFor(c, 4, time.Second); got != "held" || err != nil {
		t.Errorf("after Thaw: got %q, %v; want the held bytes", got, err)
	}
}

func TestProxy_a_connection_made_while_frozen_reaches_the_target_only_on_thaw(t *testing.T) {
	target, accepted := echoServer(t)
	p := startProxy(t, target)

	p.Freeze()
	c := dial(t, p.Addr())
	if got, err := roundTrip(c, "early", 300*time.Millisecond); got != "" || !isTimeout(err) {
		t.Fatalf("while frozen: got %q, %v; want nothing back", got, err)
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("while frozen the target saw %d connections, want 0", n)
	}
	p.Thaw()
	if got, err := readFor(c, 5, time.Second); got != "early" || err != nil {
		t.Errorf("after Thaw: got %q, %v; want what was sent while frozen", got, err)
	}
}

func TestProxy_a_client_that_left_while_frozen_is_not_carried_to_the_target(t *testing.T) {
	target, accepted := echoServer(t)
	p := startProxy(t, target)

	p.Freeze()
	c, err := net.DialTimeout("tcp", p.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("startup"))
	c.Close()
	time.Sleep(50 * time.Millisecond) // the proxy accepts it meanwhile
	p.Thaw()
	time.Sleep(200 * time.Millisecond)
	if n := accepted.Load(); n != 0 {
		t.Errorf("the target saw %d connections, want none for a client gone before the thaw", n)
	}
}

func TestProxy_refuses_upstream_connections_beyond_its_cap(t *testing.T) {
	target, accepted := echoServer(t)
	p, err := newProxy(target, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	c1 := dial(t, p.Addr())
	if got, _ := roundTrip(c1, "one", time.Second); got != "one" {
		t.Fatalf("first connection: got %q", got)
	}
	c2 := dial(t, p.Addr())
	if _, err := roundTrip(c2, "two", time.Second); err == nil || isTimeout(err) {
		t.Errorf("second connection beyond the cap: %v, want it cut", err)
	}
	if n, capped := accepted.Load(), p.capped.Load(); n != 1 || capped != 1 {
		t.Errorf("target saw %d connections, %d capped; want 1 and 1", n, capped)
	}
}

func TestPercentile_is_the_nearest_rank(t *testing.T) {
	ms := func(vs ...int) []time.Duration {
		out := make([]time.Duration, len(vs))
		for i, v := range vs {
			out[i] = time.Duration(v) * time.Millisecond
		}
		return out
	}
	for _, tc := range []struct {
		name string
		ds   []time.Duration
		p    float64
		want time.Duration
	}{
		{"none", nil, 99, 0},
		{"one", ms(7), 50, 7 * time.Millisecond},
		{"median of an odd count", ms(5, 1, 3), 50, 3 * time.Millisecond},
		{"median of an even count is the lower middle", ms(4, 1, 3, 2), 50, 2 * time.Millisecond},
		{"p99 of 100 is the 99th", ms(seq(100)...), 99, 99 * time.Millisecond},
		{"p99 of 10 is the largest", ms(seq(10)...), 99, 10 * time.Millisecond},
		{"p100 is the max", ms(9, 2, 30, 4), 100, 30 * time.Millisecond},
		{"a tiny p is the min", ms(9, 2, 30, 4), 0.1, 2 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(tc.ds, tc.p); got != tc.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tc.ds, tc.p, got, tc.want)
			}
		})
	}
}

// seq is 1…n.
func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i + 1
	}
	return out
}

func TestReadyTimeline_needs_a_503_inside_the_fault_and_measures_the_last_recovery(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(sec float64, status int) sample {
		return sample{server: "a", ep: epReady, start: t0.Add(time.Duration(sec * float64(time.Second))), took: 10 * time.Millisecond, status: status}
	}
	start, end := t0.Add(10*time.Second), t0.Add(20*time.Second)
	for _, tc := range []struct {
		name     string
		samples  []sample
		wantDown bool
		wantBack time.Duration
	}{
		{"down during, back after", []sample{at(5, 200), at(12, 503), at(21, 503), at(22, 200), at(23, 200)}, true, 2010 * time.Millisecond},
		{"a flap after recovery counts from the last failure", []sample{at(12, 503), at(21, 200), at(24, 503), at(25, 200)}, true, 5010 * time.Millisecond},
		{"never down", []sample{at(12, 200), at(21, 200)}, false, 1010 * time.Millisecond},
		{"never back", []sample{at(12, 503), at(21, 503)}, true, -1},
		{"another replica's answers do not count", []sample{at(12, 503), {server: "b", ep: epReady, start: t0.Add(21 * time.Second), status: 200}}, true, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			down, back := readyTimeline(tc.samples, "a", start, end)
			if down != tc.wantDown || back != tc.wantBack {
				t.Errorf("got down=%v back=%v, want %v %v", down, back, tc.wantDown, tc.wantBack)
			}
		})
	}
}

func TestFirstWriteAfter_is_the_first_write_answered_after_the_fault(t *testing.T) {
	t0 := time.Unix(1000, 0)
	s := func(ep string, startSec, tookSec float64, status int) sample {
		return sample{ep: ep, start: t0.Add(time.Duration(startSec * float64(time.Second))), took: time.Duration(tookSec * float64(time.Second)), status: status}
	}
	samples := []sample{
		s(epCreate, 1, 0.1, 201),  // before the end
		s(epMe, 11, 0.1, 200),     // a read
		s(epLogin, 11, 0.5, 503),  // failed
		s(epRefresh, 9, 3, 200),   // sent during, answered after: counts
		s(epCreate, 10.5, 2, 201), // answered later, at t=12.5
	}
	got, ok := firstWriteAfter(samples, t0.Add(10*time.Second))
	if !ok || got.ep != epRefresh {
		t.Errorf("got %v %v, want the refresh answered at t=12", got.ep, ok)
	}
	if _, ok := firstWriteAfter(samples[:3], t0.Add(10*time.Second)); ok {
		t.Errorf("found a write among none after the fault")
	}
}

func TestJunk_fills_until_ENOSPC_within_its_limit(t *testing.T) {
	j := &junk{path: t.TempDir() + "/junk"}
	defer j.remove()
	n, err := j.fill(100 << 10)
	if err != nil {
		t.Fatal(err)
	}
	if n > 100<<10 || n < 99<<10 {
		t.Errorf("wrote %d bytes, want just under the 100 KiB limit", n)
	}
	if err := j.remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(j.path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after remove: %v", err)
	}
}
