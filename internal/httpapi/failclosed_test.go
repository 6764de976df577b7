package httpapi

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/auth"
)

// TestHandlersFailClosedWithoutClaims calls the handler of every operation
// the spec protects with a context that never went through the bearer
// validator: each must refuse with 401, before touching its (here absent)
// dependencies or request body.
func TestHandlersFailClosedWithoutClaims(t *testing.T) {
	doc, err := Spec()
	if err != nil {
		t.Fatal(err)
	}
	h := reflect.ValueOf(&Handlers{})
	checked := 0
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			reqs := doc.Security
			if op.Security != nil {
				reqs = *op.Security
			}
			if len(reqs) == 0 {
				continue
			}
			name := strings.ToUpper(op.OperationID[:1]) + op.OperationID[1:]
			m := h.MethodByName(name)
			if !m.IsValid() {
				t.Errorf("no handler method %s for operation %s", name, op.OperationID)
				continue
			}
			t.Run(name, func(t *testing.T) {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("panicked instead of refusing: %v", p)
					}
				}()
				req := reflect.New(m.Type().In(1)).Elem()
				out := m.Call([]reflect.Value{reflect.ValueOf(context.Background()), req})
				err, _ := out[1].Interface().(error)
				var be *auth.BearerError
				if !errors.As(err, &be) || be.Status != 401 {
					t.Fatalf("got %v, want a 401 bearer error", err)
				}
			})
			checked++
		}
	}
	if checked < 10 {
		t.Fatalf("only %d protected operations found", checked)
	}
}
