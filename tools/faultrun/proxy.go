package main

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// proxy forwards TCP connections from a listener of its own on 127.0.0.1
// to target, and takes the target away the ways a database host fails:
//
//   - Refuse: every connection is cut and the port is closed, so new
//     connections are refused (a restart, a stopped server).
//   - Freeze: connections stay open but no byte moves in either direction
//     (a SIGSTOPped server, a partition); what was sent meanwhile is
//     delivered on Thaw, as a kernel's socket buffers would.
//
// Connections accepted while frozen reach target only on Thaw, and only
// if their client is still there, so a long freeze does not pile
// connections onto a shared server.
type proxy struct {
	target string
	addr   string
	// maxUpstream bounds the connections held to target at once; a client
	// beyond it is cut (counted in capped), never the shared server hit.
	maxUpstream int

	mu      sync.Mutex
	ln      net.Listener
	links   map[*link]struct{}
	thawed  chan struct{} // closed while not frozen
	closed  bool
	loopsWG sync.WaitGroup

	// capped counts clients cut at the cap; upstream, connections to
	// target now.
	capped, upstream atomic.Int64
}

// link is one client connection and its upstream one (nil until dialled).
type link struct {
	client net.Conn
	done   chan struct{}

	mu     sync.Mutex
	up     net.Conn
	closed bool
}

// setUp records the upstream connection; false when l closed first.
func (l *link) setUp(up net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.up = up
	return true
}

func (l *link) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	close(l.done)
	l.client.Close()
	if l.up != nil {
		l.up.Close()
	}
}

// newProxy listens on 127.0.0.1 at a free port and forwards to target.
func newProxy(target string, maxUpstream int) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	thawed := make(chan struct{})
	close(thawed)
	p := &proxy{target: target, addr: ln.Addr().String(), maxUpstream: maxUpstream, ln: ln, links: map[*link]struct{}{}, thawed: thawed}
	p.serve(ln)
	return p, nil
}

// Addr is host:port of the proxy's listener (the same across Refuse and
// Accept).
func (p *proxy) Addr() string { return p.addr }

func (p *proxy) serve(ln net.Listener) {
	p.loopsWG.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l := &link{client: c, done: make(chan struct{})}
			p.mu.Lock()
			if p.closed || p.ln != ln {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.links[l] = struct{}{}
			p.mu.Unlock()
			go p.run(l)
		}
	})
}

// run dials target once the proxy is not frozen, then copies both ways.
func (p *proxy) run(l *link) {
	defer p.forget(l)
	defer l.close()
	ok, waited := p.gate(l)
	if !ok {
		return
	}
	var early []byte
	if waited {
		// Accepted during a freeze: a client that gave up meanwhile is
		// not carried to target.
		var left bool
		if early, left = drain(l.client); left {
			return
		}
	}
	if int(p.upstream.Add(1)) > p.maxUpstream {
		p.upstream.Add(-1)
		p.capped.Add(1)
		return
	}
	defer p.upstream.Add(-1)
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	if !l.setUp(up) {
		up.Close()
		return
	}
	if len(early) > 0 {
		if _, err := up.Write(early); err != nil {
			return
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { p.pipe(l, up, l.client) })
	wg.Go(func() { p.pipe(l, l.client, up) })
	wg.Wait()
}

// drain reads what c's peer sent so far (waiting a few milliseconds for
// more) and reports whether the peer has closed.
func drain(c net.Conn) (early []byte, left bool) {
	defer c.SetReadDeadline(time.Time{})
	buf := make([]byte, 32<<10)
	for len(early) < 1<<20 {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		n, err := c.Read(buf)
		early = append(early, buf[:n]...)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return early, false
			}
			return early, true
		}
	}
	return early, false
}

// pipe copies src to dst while l is open, stopping at the gate whenever
// the proxy is frozen: before reading, so bytes wait in the kernel, and
// before writing what a read already returned.
func (p *proxy) pipe(l *link, dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		if ok, _ := p.gate(l); !ok {
			return
		}
		n, err := src.Read(buf)
		if n > 0 {
			if ok, _ := p.gate(l); !ok {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				l.close()
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				// Half-close: answers already under way still arrive.
				if tc, ok := dst.(interface{ CloseWrite() error }); ok {
					_ = tc.CloseWrite()
					return
				}
			}
			l.close()
			return
		}
	}
}

// gate waits while the proxy is frozen. ok is false when l was closed
// meanwhile; waited, when the proxy was frozen on arrival.
func (p *proxy) gate(l *link) (ok, waited bool) {
	p.mu.Lock()
	ch := p.thawed
	p.mu.Unlock()
	select {
	case <-ch:
	default:
		waited = true
		select {
		case <-ch:
		case <-l.done:
			return false, true
		}
	}
	select {
	case <-l.done:
		return false, waited
	default:
		return true, waited
	}
}

func (p *proxy) forget(l *link) {
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
}

// Refuse cuts every connection and closes the port until Accept.
func (p *proxy) Refuse() {
	p.mu.Lock()
	ln := p.ln
	p.ln = nil
	links := p.snapshot()
	p.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	for _, l := range links {
		l.close()
	}
}

// Accept opens the port again after Refuse. The address may be taken by
// another process in between, so binding is retried for a moment.
func (p *proxy) Accept() error {
	var err error
	for range 50 {
		var ln net.Listener
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			p.mu.Lock()
			if p.closed {
				p.mu.Unlock()
				ln.Close()
				return errors.New("proxy closed")
			}
			p.ln = ln
			p.mu.Unlock()
			p.serve(ln)
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// Freeze stops every byte in both directions until Thaw.
func (p *proxy) Freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.thawed:
		p.thawed = make(chan struct{})
	default: // frozen already
	}
}

// Thaw lets the bytes held since Freeze move again.
func (p *proxy) Thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.thawed:
	default:
		close(p.thawed)
	}
}

// Conns is the number of client connections open through the proxy.
func (p *proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.links)
}

// Close thaws, closes the port and every connection, and waits for the
// accept loops.
func (p *proxy) Close() {
	p.Thaw()
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.Refuse()
	p.loopsWG.Wait()
}

func (p *proxy) snapshot() []*link {
	out := make([]*link, 0, len(p.links))
	for l := range p.links {
		out = append(out, l)
	}
	return out
}
