package httpapi

import (
	"net/url"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// specForms are the form schemas of the spec's OAuth endpoints.
func specForms(t testing.TB) map[string]*openapi3.Schema {
	t.Helper()
	doc, err := Spec()
	if err != nil {
		t.Fatal(err)
	}
	forms := map[string]*openapi3.Schema{}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			if s, _ := formSchema(op); s != nil {
				forms[op.OperationID] = s
			}
		}
	}
	return forms
}

// kinAccepts is the validator's own check of a form: its first values
// against the schema, by kin-openapi.
func kinAccepts(schema *openapi3.Schema, form url.Values) bool {
	values := make(map[string]any, len(form))
	for name, vs := range form {
		values[name] = vs[0]
	}
	return schema.VisitJSON(values, formVisitOptions...) == nil
}

// Every OAuth endpoint's form gets the fast check (else its requests
// silently go back to the slow one), and on the forms clients send it
// says what kin-openapi says; on the others it defers to kin-openapi.
func TestFormCheckAgreesWithKinOpenAPI(t *testing.T) {
	forms := specForms(t)
	for _, id := range []string{"issueToken", "revokeToken", "introspectToken"} {
		if forms[id] == nil {
			t.Fatalf("%s: no form schema in the spec", id)
		}
	}
	bodies := []string{
		"grant_type=password&username=alice&password=wonderland&scope=me",
		"grant_type=refresh_token&refresh_token=abc&client_id=public",
		"grant_type=client_credentials",
		"grant_type=&username=alice",
		"grant_type=PASSWORD",
		"username=alice&password=x",
		"token=abc",
		"token=abc&token_type_hint=access_token",
		"token=abc&token_type_hint=refresh_token",
		"token=abc&token_type_hint=bogus",
		"token_type_hint=access_token",
		"token=",
		"extra=1&token=abc&grant_type=password",
		"",
	}
	for id, schema := range forms {
		fc := compileFormCheck(schema)
		if fc == nil {
			t.Errorf("%s: the fast check does not cover the spec's form schema", id)
			continue
		}
		for _, body := range bodies {
			form, err := url.ParseQuery(body)
			if err != nil {
				t.Fatal(err)
			}
			fast, kin := fc.passes(form), kinAccepts(schema, form)
			if fast != kin {
				t.Errorf("%s %q: fast check %v, kin-openapi %v", id, body, fast, kin)
			}
		}
	}
}

// A schema asking what the fast check does not check gets none, so
// kin-openapi checks every form against it.
func TestFormCheckLeavesOtherSchemasToKinOpenAPI(t *testing.T) {
	max := uint64(3)
	str := func(mod func(*openapi3.Schema)) *openapi3.Schema {
		s := openapi3.NewStringSchema()
		if mod != nil {
			mod(s)
		}
		return s
	}
	object := func(p *openapi3.Schema, mod func(*openapi3.Schema)) *openapi3.Schema {
		s := openapi3.NewObjectSchema().WithProperty("a", p)
		if mod != nil {
			mod(s)
		}
		return s
	}
	openapi3.DefineStringFormat("formcheck-test", `^x$`)
	defer delete(openapi3.SchemaStringFormats, "formcheck-test")
	cases := map[string]*openapi3.Schema{
		"pattern":                        object(str(func(s *openapi3.Schema) { s.Pattern = "^a$" }), nil),
		"maxLength":                      object(str(func(s *openapi3.Schema) { s.MaxLength = &max }), nil),
		"minLength":                      object(str(func(s *openapi3.Schema) { s.MinLength = 1 }), nil),
		"readOnly":                       object(str(func(s *openapi3.Schema) { s.ReadOnly = true }), nil),
		"a validated format":             object(str(func(s *openapi3.Schema) { s.Format = "formcheck-test" }), nil),
		"an integer":                     object(openapi3.NewIntegerSchema(), nil),
		"a non-string enum":              object(str(func(s *openapi3.Schema) { s.Enum = []any{1.0} }), nil),
		"additionalProperties false":     object(str(nil), func(s *openapi3.Schema) { no := false; s.AdditionalProperties.Has = &no }),
		"maxProperties":                  object(str(nil), func(s *openapi3.Schema) { s.MaxProps = &max }),
		"allOf":                          object(str(nil), func(s *openapi3.Schema) { s.AllOf = openapi3.SchemaRefs{openapi3.NewSchemaRef("", str(nil))} }),
		"a required name not a property": object(str(nil), func(s *openapi3.Schema) { s.Required = []string{"b"} }),
		"an extension":                   object(str(func(s *openapi3.Schema) { s.Extensions = map[string]any{"x-check": true} }), nil),
		"not an object":                  str(nil),
	}
	for name, schema := range cases {
		if compileFormCheck(schema) != nil {
			t.Errorf("%s: got a fast check", name)
		}
	}
	if compileFormCheck(object(str(func(s *openapi3.Schema) { s.Enum = []any{"x"}; s.Format = "password" }), func(s *openapi3.Schema) { s.Required = []string{"a"} })) == nil {
		t.Error("a required enum of strings with format password: no fast check")
	}
}

// FuzzFormCheckAgreesWithKinOpenAPI: the fast check never passes a form
// kin-openapi refuses, on any of the spec's form schemas.
func FuzzFormCheckAgreesWithKinOpenAPI(f *testing.F) {
	f.Add("grant_type=password&username=alice&password=x")
	f.Add("token=abc&token_type_hint=refresh_token")
	f.Add("token_type_hint=x&grant_type=%70assword")
	forms := specForms(f)
	checks := map[string]*formCheck{}
	for id, schema := range forms {
		if checks[id] = compileFormCheck(schema); checks[id] == nil {
			f.Fatalf("%s: no fast check", id)
		}
	}
	f.Fuzz(func(t *testing.T, body string) {
		form, err := url.ParseQuery(body)
		if err != nil || len(form) == 0 || strings.Count(body, "&") > 64 {
			return
		}
		for id, schema := range forms {
			if checks[id].passes(form) && !kinAccepts(schema, form) {
				t.Fatalf("%s %q: the fast check passed what kin-openapi refuses", id, body)
			}
		}
	})
}

// parseQuery gives what url.ParseQuery gives, values and error, on the
// forms it splits itself and on those it hands over.
func TestParseQueryMatchesStandardLibrary(t *testing.T) {
	for _, s := range []string{
		"", "&", "a", "a=", "=b", "a=b&a=c", "a=b&&c=d&", "token=" + strings.Repeat("x", 900) + "&token_type_hint=access_token",
		"a=b=c", "a=%41", "a=+b", "a;b=c", "a=b;c", "a=%zz", strings.Repeat("a=b&", 40),
	} {
		checkParseQuery(t, s)
	}
}

func checkParseQuery(t *testing.T, s string) {
	t.Helper()
	got, gotErr := parseQuery(s)
	want, wantErr := url.ParseQuery(s)
	if (gotErr == nil) != (wantErr == nil) || gotErr != nil && gotErr.Error() != wantErr.Error() {
		t.Fatalf("%q: error %v, url.ParseQuery's %v", s, gotErr, wantErr)
	}
	if got.Encode() != want.Encode() || len(got) != len(want) {
		t.Fatalf("%q: %v, url.ParseQuery gives %v", s, got, want)
	}
}

// FuzzParseQueryMatchesStandardLibrary: for any form.
func FuzzParseQueryMatchesStandardLibrary(f *testing.F) {
	f.Add("grant_type=password&username=alice&password=x")
	f.Add("a=%41&b=+&c;d")
	f.Fuzz(checkParseQuery)
}
