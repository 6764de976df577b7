package storetest

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/gatehouse/gatehouse/internal/storage"
)

// snake is the operation name of a Store method: its name in snake_case,
// an initialism such as ID being one word.
func snake(name string) string {
	var b strings.Builder
	r := []rune(name)
	for i, c := range r {
		if unicode.IsUpper(c) && i > 0 && (unicode.IsLower(r[i-1]) || (i+1 < len(r) && unicode.IsLower(r[i+1]))) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToLower(c))
	}
	return b.String()
}

func TestSnake(t *testing.T) {
	for _, tt := range []struct{ name, want string }{
		{"UserByID", "user_by_id"},
		{"ClientByID", "client_by_id"},
		{"ReplaceSigningKeyPrivate", "replace_signing_key_private"},
		{"Ping", "ping"},
	} {
		if got := snake(tt.name); got != tt.want {
			t.Errorf("snake(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// storeMethods lists the Store interface's methods.
func storeMethods(t *testing.T) []reflect.Method {
	t.Helper()
	it := reflect.TypeFor[storage.Store]()
	var ms []reflect.Method
	for i := range it.NumMethod() {
		ms = append(ms, it.Method(i))
	}
	return ms
}

// call calls method name of f with zero arguments, and returns its last
// result, or passed = true when the call reached the wrapped store (which,
// nil here, panics).
func call(t *testing.T, f *Faulty, name string) (err error, passed bool) {
	t.Helper()
	m := reflect.ValueOf(f).MethodByName(name)
	args := make([]reflect.Value, m.Type().NumIn())
	for i := range args {
		args[i] = reflect.Zero(m.Type().In(i))
	}
	defer func() {
		if recover() != nil {
			passed = true
		}
	}()
	var out []reflect.Value
	if m.Type().IsVariadic() {
		out = m.CallSlice(args)
	} else {
		out = m.Call(args)
	}
	last := out[len(out)-1].Interface()
	if last == nil {
		return nil, false
	}
	return last.(error), false
}

func TestOps_name_every_store_method_once(t *testing.T) {
	var want []string
	for _, m := range storeMethods(t) {
		want = append(want, snake(m.Name))
	}
	got := Ops()
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("Ops() = %v, want one per Store method %v", got, want)
	}
}

func TestFaulty_FailNext_fails_the_next_call_of_each_method_once(t *testing.T) {
	errInjected := errors.New("injected")
	for _, m := range storeMethods(t) {
		f := NewFaulty(nil)
		f.FailNext(snake(m.Name), errInjected)
		f.FailNext(snake(m.Name), storage.ErrBusy)
		if err, passed := call(t, f, m.Name); passed || err != errInjected {
			t.Errorf("%s after FailNext = %v (reached the store: %v), want the injected error", m.Name, err, passed)
		}
		if err, passed := call(t, f, m.Name); passed || err != storage.ErrBusy {
			t.Errorf("second %s after two FailNext = %v (reached the store: %v), want ErrBusy", m.Name, err, passed)
		}
		if _, passed := call(t, f, m.Name); !passed {
			t.Errorf("third %s after two FailNext did not reach the wrapped store", m.Name)
		}
	}
}

func TestFaulty_FailAll_fails_every_method_until_Heal(t *testing.T) {
	f := NewFaulty(nil)
	f.FailNext(OpPing, storage.ErrBusy)
	f.FailAll(storage.ErrUnavailable)
	for _, m := range storeMethods(t) {
		for range 2 {
			if err, passed := call(t, f, m.Name); passed || err != storage.ErrUnavailable {
				t.Errorf("%s under FailAll = %v (reached the store: %v), want ErrUnavailable", m.Name, err, passed)
			}
		}
	}
	f.Heal()
	for _, m := range storeMethods(t) {
		if _, passed := call(t, f, m.Name); !passed {
			t.Errorf("%s after Heal did not reach the wrapped store", m.Name)
		}
	}
}

func TestFaulty_FailNext_of_one_method_leaves_the_others_alone(t *testing.T) {
	f := NewFaulty(nil)
	f.FailNext(OpCreateSession, storage.ErrFull)
	for _, m := range storeMethods(t) {
		if m.Name == "CreateSession" {
			continue
		}
		if _, passed := call(t, f, m.Name); !passed {
			t.Errorf("%s failed after FailNext(%s)", m.Name, OpCreateSession)
		}
	}
	if err, _ := call(t, f, "CreateSession"); err != storage.ErrFull {
		t.Errorf("CreateSession = %v, want ErrFull", err)
	}
}

func TestFaulty_FailNext_panics_on_an_unknown_operation(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("FailNext(\"create_sesion\") did not panic")
		}
	}()
	NewFaulty(nil).FailNext("create_sesion", storage.ErrBusy)
}

// The operation names are the ones storage.Instrument reports, so that a
// test can fail the operation a metric counts.
func TestOps_are_the_names_storage_Instrument_reports(t *testing.T) {
	f := NewFaulty(nil)
	f.FailAll(storage.ErrUnavailable)
	var got []string
	in := storage.Instrument(f, func(_ context.Context, op string, _ time.Duration, _ error) { got = append(got, op) })
	for _, m := range storeMethods(t) {
		if m.Name == "Close" {
			continue // Instrument passes Close through unobserved
		}
		got = got[:0]
		mv := reflect.ValueOf(in).MethodByName(m.Name)
		args := make([]reflect.Value, mv.Type().NumIn())
		for i := range args {
			args[i] = reflect.Zero(mv.Type().In(i))
		}
		args[0] = reflect.ValueOf(t.Context())
		if mv.Type().IsVariadic() {
			mv.CallSlice(args)
		} else {
			mv.Call(args)
		}
		if want := snake(m.Name); len(got) != 1 || got[0] != want || !slices.Contains(ops, want) {
			t.Errorf("Instrument reported %s as %v, want [%s] from Ops()", m.Name, got, want)
		}
	}
}
