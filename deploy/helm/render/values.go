// Values: values.yaml coalesced with -f files and --set expressions, typed as Helm types them.

package main

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/ghodss/yaml"
)

func readYAMLMap(path string) (map[string]interface{}, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := map[string]interface{}{}
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if m == nil {
		m = map[string]interface{}{}
	}
	return m, nil
}

// coalesce merges src over dst like Helm: maps merge deeply, anything else
// replaces, and a null in src deletes the key.
func coalesce(dst, src map[string]interface{}) map[string]interface{} {
	for k, sv := range src {
		if sv == nil {
			delete(dst, k)
			continue
		}
		sm, sIsMap := sv.(map[string]interface{})
		dm, dIsMap := dst[k].(map[string]interface{})
		if sIsMap && dIsMap {
			dst[k] = coalesce(dm, sm)
		} else {
			dst[k] = sv
		}
	}
	return dst
}

// typedValue types a --set value as Helm's strvals does.
func typedValue(s string, asString bool) interface{} {
	if asString {
		return s
	}
	switch strings.ToLower(s) {
	case "true":
		return true
	case "false":
		return false
	case "null":
		return nil
	}
	if s == "0" {
		return int64(0)
	}
	if len(s) > 0 && s[0] != '0' {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n
		}
	}
	return s
}

// splitEscaped splits on sep, honouring backslash escapes of sep.
func splitEscaped(s string, sep byte) []string {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && s[i+1] == sep {
			cur.WriteByte(sep)
			i++
			continue
		}
		if s[i] == sep {
			parts = append(parts, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteByte(s[i])
	}
	return append(parts, cur.String())
}

var indexRe = regexp.MustCompile(`^(.*)\[(\d+)\]$`)

// applySet applies one "a.b[0].c=v,x=y" expression to vals.
func applySet(vals map[string]interface{}, expr string, asString bool) error {
	for _, pair := range splitEscaped(expr, ',') {
		key, raw, ok := strings.Cut(pair, "=")
		if !ok {
			return fmt.Errorf("--set %q: no value", pair)
		}
		path := splitEscaped(key, '.')
		if err := setPath(vals, path, typedValue(raw, asString)); err != nil {
			return fmt.Errorf("--set %q: %w", pair, err)
		}
	}
	return nil
}

func setPath(m map[string]interface{}, path []string, v interface{}) error {
	head := path[0]
	if g := indexRe.FindStringSubmatch(head); g != nil {
		idx, _ := strconv.Atoi(g[2])
		list, _ := m[g[1]].([]interface{})
		for len(list) <= idx {
			list = append(list, nil)
		}
		if len(path) == 1 {
			list[idx] = v
		} else {
			child, ok := list[idx].(map[string]interface{})
			if !ok {
				child = map[string]interface{}{}
			}
			if err := setPath(child, path[1:], v); err != nil {
				return err
			}
			list[idx] = child
		}
		m[g[1]] = list
		return nil
	}
	if len(path) == 1 {
		m[head] = v
		return nil
	}
	child, ok := m[head].(map[string]interface{})
	if !ok {
		child = map[string]interface{}{}
	}
	if err := setPath(child, path[1:], v); err != nil {
		return err
	}
	m[head] = child
	return nil
}
