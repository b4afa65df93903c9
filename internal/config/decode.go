package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// offFields are the server addresses where "off" disables the server.
var offFields = []string{"healthzBindAddress", "metricsBindAddress", "xdp.adminSocket"}

// Decode parses a configuration file, YAML or JSON, strictly: a duplicate
// key, an unknown field (matched case-sensitively), a value of the wrong
// type, or a missing or wrong apiVersion or kind is an error naming the
// field. Fields the file does not set, or sets to null, keep Default's
// value. Decode does not Validate.
//
// YAML 1.1 reads some bare words as booleans (off, no, yes, on). In the
// server address fields a false boolean means Off, so "healthzBindAddress:
// off" disables the server as written; elsewhere such a word must be quoted
// where a string is wanted, and the error says so. Numbers given for string
// fields ("cpus: 3") are taken as their text.
func Decode(data []byte) (Configuration, error) {
	j, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		// yaml.v2's messages name the line and, for duplicates, the key.
		return Configuration{}, fmt.Errorf("parse YAML: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return Configuration{}, fmt.Errorf("parse YAML: %w", err)
	}
	root, ok := tree.(map[string]any)
	if !ok {
		return Configuration{}, fmt.Errorf("want a mapping with apiVersion %s and kind %s, got %s", APIVersion, Kind, jsonKind(tree))
	}
	// Check the type first: a file of another kind would otherwise fail
	// on its first unknown field, which says less.
	var errs []error
	for _, f := range []struct{ key, want string }{{"apiVersion", APIVersion}, {"kind", Kind}} {
		switch v, ok := root[f.key]; {
		case !ok || v == nil:
			errs = append(errs, fieldErr(f.key, "missing, want %q", f.want))
		case v != f.want:
			errs = append(errs, fieldErr(f.key, "%s, want %q", jsonText(v), f.want))
		}
	}
	if len(errs) > 0 {
		return Configuration{}, errors.Join(errs...)
	}
	fixed, errs := conform("", tree, reflect.TypeFor[Configuration]())
	if len(errs) > 0 {
		return Configuration{}, errors.Join(errs...)
	}
	j, err = json.Marshal(fixed)
	if err != nil {
		return Configuration{}, fmt.Errorf("re-encode: %w", err)
	}
	c := Default()
	dec = json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
			return Configuration{}, fieldErr(te.Field, "want %s, got %s", te.Type, te.Value)
		}
		return Configuration{}, err
	}
	c.normalize()
	return c, nil
}

// conform checks v, decoded from JSON, against the Go type t: it reports
// keys t has no field for (exact case; encoding/json alone would accept
// "Master" for master and not say where an unknown key was), and converts
// the scalars YAML typed differently from what the field wants (see
// Decode). Mismatches it does not handle are left for encoding/json, whose
// errors carry the field path too.
func conform(path string, v any, t reflect.Type) (any, []error) {
	if v == nil {
		return nil, nil
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return v, []error{fieldErr(orRoot(path), "want a mapping, got %s", jsonKind(v))}
		}
		var errs []error
		out := make(map[string]any, len(m))
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			p := join(path, k)
			f, ok := fieldByTag(t, k)
			if !ok {
				errs = append(errs, fieldErr(p, "unknown field"))
				continue
			}
			fv, ferrs := conform(p, m[k], f.Type)
			out[k] = fv
			errs = append(errs, ferrs...)
		}
		return out, errs
	case reflect.Slice:
		l, ok := v.([]any)
		if !ok {
			if s, isStr := v.(string); isStr {
				return v, []error{fieldErr(path, "want a list, got string %q (write [%s])", s, s)}
			}
			return v, []error{fieldErr(path, "want a list, got %s", jsonKind(v))}
		}
		var errs []error
		out := make([]any, len(l))
		for i, e := range l {
			var eerrs []error
			out[i], eerrs = conform(fmt.Sprintf("%s[%d]", path, i), e, t.Elem())
			errs = append(errs, eerrs...)
		}
		return out, errs
	case reflect.String:
		switch x := v.(type) {
		case json.Number:
			return x.String(), nil
		case bool:
			if !x && slices.Contains(offFields, path) {
				return Off, nil
			}
			return v, []error{fieldErr(path, "want a string, got boolean %t (quote YAML words such as yes, no, on and off)", x)}
		}
	}
	return v, nil
}

// fieldByTag finds t's field whose JSON name is exactly name.
func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for f := range t.Fields() {
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orRoot(path string) string {
	if path == "" {
		return "(root)"
	}
	return path
}

// jsonKind names the JSON type of v for messages.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "nothing (empty document)"
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return fmt.Sprintf("%T", v)
}

// jsonText renders v for messages.
func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
