package main

import (
	"testing"
	"time"
)

func TestPercentile_is_the_nearest_rank(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		var d []time.Duration
		for _, n := range ns {
			d = append(d, time.Duration(n)*time.Millisecond)
		}
		return d
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // 100 … 1, unsorted on purpose
	}
	threeHundred := make([]int, 300)
	for i := range threeHundred {
		threeHundred[i] = i + 1
	}
	for _, tc := range []struct {
		name    string
		samples []time.Duration
		p       float64
		want    time.Duration
	}{
		{"none", nil, 50, 0},
		{"one sample is every percentile", ms(7), 99, 7 * time.Millisecond},
		{"p50 of an even count is the lower middle", ms(4, 1, 3, 2), 50, 2 * time.Millisecond},
		{"p50 of an odd count is the middle", ms(5, 1, 3), 50, 3 * time.Millisecond},
		{"p99 of 100 is the 99th", ms(hundred...), 99, 99 * time.Millisecond},
		{"p100 is the largest", ms(hundred...), 100, 100 * time.Millisecond},
		{"p99 of 300 is the 297th", ms(threeHundred...), 99, 297 * time.Millisecond},
		// 7/100 × 100 is 7.000000000000001 in binary; the rank is 7.
		{"p7 of 100 is the 7th", ms(hundred...), 7, 7 * time.Millisecond},
		{"p99 of 10 is the largest", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(tc.samples, tc.p); got != tc.want {
				t.Errorf("percentile(p%g) = %s, want %s", tc.p, got, tc.want)
			}
		})
	}
}

func TestParseStat_counts_fields_after_the_command_name(t *testing.T) {
	for _, tc := range []struct {
		name               string
		stat               string
		wantUtime, wantSys uint64
		wantErr            bool
	}{
		{
			name:      "plain",
			stat:      "4242 (gatehouse) S 1 4242 4242 0 -1 4194560 2553 0 0 0 173 42 0 0 20 0 7 0 123456 1270194176 7300 18446744073709551615",
			wantUtime: 173, wantSys: 42,
		},
		{
			name:      "a command name with spaces and parentheses",
			stat:      "7 (a b) (c)) R 1 7 7 0 -1 0 0 0 0 0 9 1 0 0 20 0 1 0 5 0 0",
			wantUtime: 9, wantSys: 1,
		},
		{name: "truncated", stat: "7 (x) R 1 7 7 0", wantErr: true},
		{name: "no command name", stat: "7 x R 1", wantErr: true},
		{name: "not a number", stat: "7 (x) R 1 7 7 0 -1 0 0 0 0 0 nine 1 0", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gotU, gotS, err := parseStat([]byte(tc.stat))
			if tc.wantErr {
				if err == nil {
					t.Errorf("parseStat = %d, %d, nil; want an error", gotU, gotS)
				}
				return
			}
			if err != nil || gotU != tc.wantUtime || gotS != tc.wantSys {
				t.Errorf("parseStat = %d, %d, %v; want %d, %d, nil", gotU, gotS, err, tc.wantUtime, tc.wantSys)
			}
		})
	}
}

func TestParseStatusKiB(t *testing.T) {
	status := "Name:\tgatehouse\nVmPeak:\t 1270196 kB\nVmHWM:\t   41236 kB\nVmRSS:\t   29184 kB\nThreads:\t7\n"
	for _, tc := range []struct {
		field string
		want  int64
	}{{"VmRSS", 29184}, {"VmHWM", 41236}} {
		if got, err := parseStatusKiB([]byte(status), tc.field); err != nil || got != tc.want {
			t.Errorf("parseStatusKiB(%s) = %d, %v; want %d", tc.field, got, err, tc.want)
		}
	}
	if _, err := parseStatusKiB([]byte("Name:\tx\n"), "VmRSS"); err == nil {
		t.Error("parseStatusKiB without VmRSS: want an error")
	}
}

func TestParseStoreCalls_sums_results_by_op(t *testing.T) {
	text := `# HELP gatehouse_store_duration_seconds Store call latency by operation and result.
gatehouse_store_duration_seconds_bucket{op="changes",result="ok",le="0.0001"} 3
gatehouse_store_duration_seconds_sum{op="changes",result="ok"} 0.0025
gatehouse_store_duration_seconds_count{op="changes",result="ok"} 10
gatehouse_store_duration_seconds_sum{op="ping",result="ok"} 0.001
gatehouse_store_duration_seconds_count{op="ping",result="ok"} 2
gatehouse_store_duration_seconds_sum{op="ping",result="fault"} 0.5
gatehouse_store_duration_seconds_count{op="ping",result="fault"} 1
`
	got := parseStoreCalls(text)
	if c := got["changes"]; c.N != 10 || c.Sum != 0.0025 {
		t.Errorf("changes = %+v, want 10 calls, 0.0025 s", c)
	}
	if c := got["ping"]; c.N != 3 || c.Sum != 0.501 {
		t.Errorf("ping = %+v, want 3 calls, 0.501 s", c)
	}
	if len(got) != 2 {
		t.Errorf("ops = %v, want changes and ping", got)
	}
}

func TestLoopbackDSN_refuses_other_hosts(t *testing.T) {
	for dsn, wantOK := range map[string]bool{
		"postgres://postgres@127.0.0.1:5432/test?sslmode=disable": true,
		"postgres://postgres@localhost/test":                      true,
		"postgres://postgres@db.example.com/test":                 false,
		"postgres://postgres@127.0.0.1,10.0.0.5/test":             false,
	} {
		if err := loopbackDSN(dsn); (err == nil) != wantOK {
			t.Errorf("loopbackDSN(%q) = %v, want ok %v", dsn, err, wantOK)
		}
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 400000: "400,000", 100001: "100,001", -1234: "-1,234"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}
