package conffile

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Marshal writes m as one `key = value` line per key, sorted by key, so that
// Unmarshal gives back the same keys with the values formatted as strings.
// Values are strings, booleans, numbers or fmt.Stringers; keys must already
// be valid lower-case keys. Nested maps, lists and values that the format
// can't hold (a newline, or both '"' and something that needs quoting)
// are refused.
func (Legacy) Marshal(m map[string]any) ([]byte, error) {
	var b strings.Builder
	for _, key := range slices.Sorted(maps.Keys(m)) {
		if msg := checkKey(key); msg != "" || key == "" {
			return nil, fmt.Errorf("marshal key %q: invalid key", key)
		}
		value, err := formatValue(m[key])
		if err != nil {
			return nil, fmt.Errorf("marshal key %q: %w", key, err)
		}
		fmt.Fprintf(&b, "%s = %s\n", key, value)
	}
	return []byte(b.String()), nil
}

// formatValue renders v as it must appear after "= ", quoted if needed.
func formatValue(v any) (string, error) {
	var s string
	switch v := v.(type) {
	case string:
		s = v
	case fmt.Stringer:
		s = v.String()
	case bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		s = fmt.Sprint(v)
	default:
		return "", fmt.Errorf("unsupported value of type %T", v)
	}
	if strings.Contains(s, "\n") {
		return "", errors.New("value contains a newline")
	}
	if !needsQuotes(s) {
		return s, nil
	}
	if strings.Contains(s, `"`) {
		return "", errors.New(`value needs quotes but contains '"'`)
	}
	return `"` + s + `"`, nil
}

// needsQuotes reports whether s would not read back unchanged unquoted.
func needsQuotes(s string) bool {
	return strings.Contains(s, "#") || strings.HasPrefix(s, `"`) || s != strings.TrimSpace(s)
}
