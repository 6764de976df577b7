package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version names this build, e.g. "gatehouse v0.1.0 (abc1234, go1.26.8)"
// or "gatehouse (devel) (go1.26.8)": `gatehouse version` prints it and
// /healthz reports it. The Go toolchain stamps it: the main module's
// version comes from the VCS tag (a pseudo-version between tags, "(devel)"
// under go run or go test), the revision from the checkout built, "-dirty"
// when it had uncommitted changes.
func version() string {
	v, rev := buildVersion(debug.ReadBuildInfo())
	detail := runtime.Version()
	if rev != "" {
		detail = rev + ", " + detail
	}
	return fmt.Sprintf("gatehouse %s (%s)", v, detail)
}

// runVersion prints version().
func runVersion(stdout io.Writer) error {
	_, err := fmt.Fprintln(stdout, version())
	return err
}

// buildVersion reads the main module's version and the short VCS revision,
// with "-dirty" for a modified checkout, from build info. The revision is
// empty when the build recorded none (-buildvcs=false, no .git in a Docker
// build context, go test).
func buildVersion(info *debug.BuildInfo, ok bool) (v, rev string) {
	v = "(devel)"
	if !ok || info == nil {
		return v, ""
	}
	if info.Main.Version != "" {
		v = info.Main.Version
	}
	var modified bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		return v, ""
	}
	if len(rev) > 7 {
		rev = rev[:7]
	}
	if modified {
		rev += "-dirty"
	}
	return v, rev
}
