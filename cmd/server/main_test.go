package main

import (
	"os"
	"testing"

	"github.com/gatehouse/gatehouse/internal/servertest"
)

// TestMain removes the server binary the crash tests build.
func TestMain(m *testing.M) {
	code := m.Run()
	servertest.Cleanup()
	os.Exit(code)
}
