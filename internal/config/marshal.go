package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// Marshal renders c as YAML with apiVersion and kind set: the fields in
// declaration order (not sorted, as sigs.k8s.io/yaml would), each preceded
// by its flag's help text. Strings are double-quoted, so values such as
// "off" or "0" read back as strings. Decode(Marshal(c)) == c for a
// normalized c.
func Marshal(c Configuration) ([]byte, error) {
	c.APIVersion, c.Kind = APIVersion, Kind
	help := make(map[string]flagDef, len(flags))
	for _, d := range flags {
		help[d.path] = d
	}
	var b bytes.Buffer
	if err := marshalStruct(&b, reflect.ValueOf(c), "", "", help); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func marshalStruct(b *bytes.Buffer, v reflect.Value, path, indent string, help map[string]flagDef) error {
	t := v.Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		p := join(path, name)
		if d, ok := help[p]; ok {
			fmt.Fprintf(b, "%s# --%s: %s\n", indent, d.name, d.usage)
		}
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct {
			fmt.Fprintf(b, "%s%s:\n", indent, name)
			if err := marshalStruct(b, fv, p, indent+"  ", help); err != nil {
				return err
			}
			continue
		}
		if fv.Kind() == reflect.Slice && fv.IsNil() {
			// "[]" rather than null: Decode reads both as nil, and [] shows
			// a list goes there.
			fv = reflect.MakeSlice(fv.Type(), 0, 0)
		}
		// A JSON scalar or flow sequence is valid YAML, and a JSON string
		// is a YAML double-quoted scalar with the same escapes.
		j, err := json.Marshal(fv.Interface())
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		fmt.Fprintf(b, "%s%s: %s\n", indent, name, j)
	}
	return nil
}
