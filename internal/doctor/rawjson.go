// Small readers of raw JSON answers, shared by the inspection of bodies and
// lists and the collection of statuses.

package doctor

import (
	"bytes"
	"encoding/json"
	"sort"
)

// field follows keys through nested objects; nil when a key is missing.
func field(raw json.RawMessage, keys ...string) json.RawMessage {
	for _, k := range keys {
		var obj map[string]json.RawMessage
		if json.Unmarshal(raw, &obj) != nil {
			return nil
		}
		raw = obj[k]
	}
	return raw
}

// scalar returns a string's or a number's text.
func scalar(raw json.RawMessage) (string, bool) {
	switch jsonType(raw) {
	case "string":
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err == nil
	case "number":
		return string(bytes.TrimSpace(raw)), true
	}
	return "", false
}

// listsIn returns the data's list, or the lists an object holds.
func listsIn(data json.RawMessage) [][]json.RawMessage {
	var list []json.RawMessage
	if json.Unmarshal(data, &list) == nil {
		return [][]json.RawMessage{list}
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(data, &obj) != nil {
		return nil
	}
	var out [][]json.RawMessage
	for _, k := range sortedKeys(obj) {
		if json.Unmarshal(obj[k], &list) == nil {
			out = append(out, list)
		}
	}
	return out
}

func isNumber(raw json.RawMessage) bool {
	if jsonType(raw) == "number" {
		return true
	}
	s, ok := scalar(raw)
	return ok && isDigits(s)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
