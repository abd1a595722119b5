package doctor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/refundhub/refundhub/internal/platform"
)

// buildPatch writes the profile file the product should run with: the
// override in use (if any) with the report's changes, as one dotted key per
// line, and the decisions as comments above it. Dotted keys rather than
// [tables] so that a commented line, once uncommented, is valid wherever it
// stands. It returns the file and, when it does not validate, why.
func buildPatch(override []byte, rep *Report) (string, string) {
	tree := map[string]any{}
	if len(override) > 0 {
		if _, err := toml.Decode(string(override), &tree); err != nil {
			return "", "the profile in use does not parse: " + err.Error()
		}
	}
	for _, ch := range rep.Changes {
		setPath(tree, strings.Split(ch.Key, "."), ch.Value)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Platform profile for UPSTREAM_PROFILE, written by `refundctl doctor --platform %s` against %s.\n", rep.Platform, rep.BaseURL)
	if len(override) > 0 {
		fmt.Fprintf(&b, "# It is the profile in use (%s) with doctor's changes: it replaces that file.\n", rep.Profile)
	} else {
		b.WriteString("# It holds only what differs from the built-in profile.\n")
	}
	if len(rep.Changes) == 0 {
		b.WriteString("#\n# Doctor changed nothing.\n")
	} else {
		b.WriteString("#\n# Changed from what the platform answered:\n")
		for _, ch := range rep.Changes {
			fmt.Fprintf(&b, "#   %s: %s\n", ch.Key, oneLine(ch.Reason))
		}
	}
	if len(rep.Decisions) > 0 {
		b.WriteString("#\n# Decide by hand; where a line follows, complete it and remove its leading \"# \":\n")
		for _, d := range rep.Decisions {
			fmt.Fprintf(&b, "#\n#   %s: %s\n", d.Key, oneLine(d.Note))
			if d.Suggestion != "" {
				fmt.Fprintf(&b, "# %s\n", d.Suggestion)
			}
		}
	}
	lines := flatten(tree, "")
	if len(lines) > 0 {
		b.WriteString("\n")
		for _, l := range lines {
			b.WriteString(l + "\n")
		}
	}
	patch := b.String()
	if _, err := platform.Parse([]byte(patch), "patch"); err != nil {
		return patch, err.Error()
	}
	return patch, ""
}

// setPath sets the value at a dotted key, creating tables on the way and
// replacing what was there (a whole status entry included, as the profile
// merges them).
func setPath(tree map[string]any, keys []string, v any) {
	for _, k := range keys[:len(keys)-1] {
		sub, ok := tree[k].(map[string]any)
		if !ok {
			sub = map[string]any{}
			tree[k] = sub
		}
		tree = sub
	}
	tree[keys[len(keys)-1]] = v
}

// flatten writes a tree as sorted dotted-key lines. A status entry is one
// inline table, since the profile replaces entries whole.
func flatten(tree map[string]any, prefix string) []string {
	keys := make([]string, 0, len(tree))
	for k := range tree {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		key := prefix + tomlKey(k)
		if sub, ok := tree[k].(map[string]any); ok && !isStatusTable(prefix) {
			out = append(out, flatten(sub, key+".")...)
			continue
		}
		out = append(out, key+" = "+tomlValue(tree[k]))
	}
	return out
}

func isStatusTable(prefix string) bool {
	return prefix == "taobao.refund_status." || prefix == "alibaba.refund_status."
}

var bareKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func tomlKey(k string) string {
	if bareKey.MatchString(k) {
		return k
	}
	return tomlString(k)
}

// tomlString writes a TOML basic string: JSON's escapes are all TOML's.
func tomlString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}

// tomlValue writes the values a profile holds: strings, integers, floats,
// booleans, times, lists and (inline) tables.
func tomlValue(v any) string {
	switch x := v.(type) {
	case string:
		return tomlString(x)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		switch {
		case math.IsNaN(x):
			return "nan"
		case math.IsInf(x, 1):
			return "inf"
		case math.IsInf(x, -1):
			return "-inf"
		case x == math.Trunc(x) && math.Abs(x) < 1e15:
			return strconv.FormatFloat(x, 'f', 1, 64)
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case time.Time:
		return x.Format(time.RFC3339Nano)
	case []string:
		parts := make([]string, len(x))
		for i, s := range x {
			parts[i] = tomlString(s)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = tomlValue(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case []map[string]any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = tomlValue(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return inlineOrder(keys[i]) < inlineOrder(keys[j]) })
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = tomlKey(k) + " = " + tomlValue(x[k])
		}
		return "{ " + strings.Join(parts, ", ") + " }"
	}
	return tomlString(fmt.Sprint(v))
}

// inlineOrder puts a status entry's names before its code, as the built-in
// file does; other keys sort by name.
func inlineOrder(k string) string {
	if k == "names" {
		return "\x00"
	}
	return k
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
