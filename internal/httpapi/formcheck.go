package httpapi

import (
	"encoding/json"
	"net/url"
	"slices"

	"github.com/getkin/kin-openapi/openapi3"
)

// formCheck is what a form body's schema asks when it asks little: some
// parameters required, some limited to an enum, every one a string (which
// a form value always is). The OAuth endpoints' schemas are of that kind.
// It is compiled from the spec's schema at start-up, so the spec stays
// the only source of what is checked, and it only ever says yes: a form
// it cannot pass goes to kin-openapi's VisitJSON, which decides and gives
// the error. Building the values map and walking the schema generically
// was a twentieth of an introspection request's CPU.
type formCheck struct {
	required []string
	enums    []formEnum
}

// formEnum is a parameter limited to the values of its enum.
type formEnum struct {
	name    string
	allowed []string
}

// Keywords a form schema may hold for the fast check to stand for
// kin-openapi's; any other one (a pattern, a length, readOnly,
// additionalProperties, an extension…) leaves the form to kin-openapi.
// Read from the schema as kin-openapi marshals it, so a keyword this list
// has not heard of counts as one it cannot check.
var (
	formObjectKeywords   = []string{"type", "description", "title", "required", "properties", "example", "examples", "externalDocs"}
	formPropertyKeywords = []string{"type", "description", "title", "enum", "format", "example", "examples", "externalDocs", "deprecated"}
)

// compileFormCheck returns the fast check of schema, or nil when schema
// asks something it does not check.
func compileFormCheck(schema *openapi3.Schema) *formCheck {
	if schema == nil || !onlyKeywords(schema, formObjectKeywords) || !schema.Type.Is(openapi3.TypeObject) {
		return nil
	}
	fc := &formCheck{required: slices.Clone(schema.Required)}
	for _, name := range schema.Required {
		if schema.Properties[name] == nil {
			// kin-openapi checks required names against the value alone;
			// keep to schemas whose required names are properties.
			return nil
		}
	}
	for name, ref := range schema.Properties {
		p := ref.Value
		if p == nil || !onlyKeywords(p, formPropertyKeywords) || !p.Type.Is(openapi3.TypeString) {
			return nil
		}
		if p.Format != "" {
			// A format kin-openapi validates (one registered with it) is
			// its to check; the others it accepts as any string.
			if _, validated := openapi3.SchemaStringFormats[p.Format]; validated {
				return nil
			}
		}
		if len(p.Enum) > 0 {
			values := make([]string, 0, len(p.Enum))
			for _, e := range p.Enum {
				s, ok := e.(string)
				if !ok {
					return nil
				}
				values = append(values, s)
			}
			fc.enums = append(fc.enums, formEnum{name, values})
		}
	}
	return fc
}

// onlyKeywords reports whether schema, as JSON, has no keyword outside
// allowed.
func onlyKeywords(schema *openapi3.Schema, allowed []string) bool {
	b, err := json.Marshal(schema)
	if err != nil {
		return false
	}
	var keywords map[string]json.RawMessage
	if err := json.Unmarshal(b, &keywords); err != nil {
		return false
	}
	for k := range keywords {
		if !slices.Contains(allowed, k) {
			return false
		}
	}
	return true
}

// passes reports whether form, checked by its first values as the
// validator checks it, certainly matches the schema. False means only
// that kin-openapi must look.
func (fc *formCheck) passes(form url.Values) bool {
	for _, name := range fc.required {
		if _, ok := form[name]; !ok {
			return false
		}
	}
	for _, e := range fc.enums {
		vs, ok := form[e.name]
		if ok && (len(vs) == 0 || !slices.Contains(e.allowed, vs[0])) {
			return false
		}
	}
	return true
}
