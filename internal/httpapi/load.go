package httpapi

import (
	"sync/atomic"
	"time"
)

// loadWindow is how recently a request other than a login must have
// started for Load to report the API busy.
const loadWindow = 100 * time.Millisecond

// Load follows the requests other than those to the token endpoint: how
// many are in progress and when the latest one started. Password hashing
// asks it whether it competes with them for the CPU (users.Options.Contended).
// The count alone is not enough: when hashing holds the only core, the
// other requests wait unread in their sockets and the count is mostly 0,
// so a start within the last loadWindow counts too.
type Load struct {
	inFlight atomic.Int64
	last     atomic.Int64 // UnixNano of the latest start
}

func (l *Load) start(now time.Time) {
	l.inFlight.Add(1)
	l.last.Store(now.UnixNano())
}

func (l *Load) done() { l.inFlight.Add(-1) }

// Busy reports whether a request other than a login is in progress or
// started within the last loadWindow.
func (l *Load) Busy() bool {
	return l.inFlight.Load() > 0 || time.Now().UnixNano()-l.last.Load() < int64(loadWindow)
}
