package main

import (
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestBuildVersion(t *testing.T) {
	t.Parallel()
	const rev = "c813b52a0f9e4d7b8a6c5e3f2d1b0a9e8f7c6d5b"
	settings := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	tests := []struct {
		name    string
		info    *debug.BuildInfo
		ok      bool
		wantV   string
		wantRev string
	}{
		{"no_build_info_is_devel", nil, false, "(devel)", ""},
		{"go_run_or_go_test_is_devel_without_revision",
			&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, true, "(devel)", ""},
		{"empty_main_version_is_devel",
			&debug.BuildInfo{}, true, "(devel)", ""},
		{"tagged_clean_checkout",
			&debug.BuildInfo{Main: debug.Module{Version: "v0.1.0"}, Settings: settings("vcs", "git", "vcs.revision", rev, "vcs.modified", "false")},
			true, "v0.1.0", "c813b52"},
		{"modified_checkout_is_dirty",
			&debug.BuildInfo{Main: debug.Module{Version: "v0.1.0+dirty"}, Settings: settings("vcs.revision", rev, "vcs.modified", "true")},
			true, "v0.1.0+dirty", "c813b52-dirty"},
		{"pseudo_version_between_tags",
			&debug.BuildInfo{Main: debug.Module{Version: "v0.1.1-0.20261127071900-c813b52a0f9e"}, Settings: settings("vcs.revision", rev)},
			true, "v0.1.1-0.20261127071900-c813b52a0f9e", "c813b52"},
		{"short_revision_kept_whole",
			&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: settings("vcs.revision", "abc")},
			true, "(devel)", "abc"},
		{"modified_without_revision_names_no_revision",
			&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: settings("vcs.modified", "true")},
			true, "(devel)", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			gotV, gotRev := buildVersion(tt.info, tt.ok)
			if gotV != tt.wantV || gotRev != tt.wantRev {
				t.Errorf("buildVersion(%+v, %v) = %q, %q, want %q, %q", tt.info, tt.ok, gotV, gotRev, tt.wantV, tt.wantRev)
			}
		})
	}
}

// versionLineRE is `gatehouse VERSION (REVISION, GOVERSION)`, the revision
// only when the build recorded one. Test binaries record none.
var versionLineRE = regexp.MustCompile(`^gatehouse (\(devel\)|v\S+) \((?:([0-9a-f]{1,7}(?:-dirty)?), )?(go\S+)\)\n$`)

func TestVersionCommand(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	if err := runVersion(&out); err != nil {
		t.Fatalf("runVersion = %v", err)
	}
	got := out.String()
	m := versionLineRE.FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("version printed %q, want `gatehouse VERSION ([REVISION, ]GOVERSION)`", got)
	}
	if m[3] != runtime.Version() {
		t.Errorf("version printed Go %q, want %q (runtime.Version)", m[3], runtime.Version())
	}
	// /healthz reports the same line.
	want := strings.TrimSuffix(got, "\n")
	if v := version(); v != want {
		t.Errorf("version() = %q, want %q to match the printed line %q", v, want, got)
	}
}
