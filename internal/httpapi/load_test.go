package httpapi

import (
	"testing"
	"testing/synctest"
	"time"
)

// Load reports the API busy while a request is in progress and for
// loadWindow after the latest one started, then idle.
func TestLoadBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var l Load
		if l.Busy() {
			t.Fatal("a new Load reports busy")
		}
		l.start(time.Now())
		if !l.Busy() {
			t.Fatal("not busy with a request in progress")
		}
		time.Sleep(2 * loadWindow)
		if !l.Busy() {
			t.Fatal("not busy with a request in progress for long")
		}
		l.done()
		if l.Busy() {
			t.Fatal("busy with none in progress, the latest started long ago")
		}
		l.start(time.Now())
		l.done()
		time.Sleep(loadWindow - time.Millisecond)
		if !l.Busy() {
			t.Fatal("not busy just inside the window after a start")
		}
		time.Sleep(time.Millisecond)
		if l.Busy() {
			t.Fatal("busy once the window after the latest start has passed")
		}
	})
}
