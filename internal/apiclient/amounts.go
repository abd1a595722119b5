package apiclient

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"sync"

	"github.com/refundhub/refundhub/internal/platform"
)

// Amounts are fen inside the product. A platform whose profile says its
// amounts are yuan (amounts.taobao = "yuan") gets them converted on the way
// out and on the way in: every JSON field that the request or response type
// declares as an Amount is rewritten, exactly, between fen integers and yuan
// decimals with two places. With fen (the default) nothing is touched.

// amountFieldNames returns the JSON names of every Amount field reachable
// from t, cached per type.
func amountFieldNames(t reflect.Type) map[string]bool {
	if v, ok := amountNames.Load(t); ok {
		return v.(map[string]bool)
	}
	names := map[string]bool{}
	collectAmountNames(t, names, map[reflect.Type]bool{})
	amountNames.Store(t, names)
	return names
}

var amountNames sync.Map // reflect.Type -> map[string]bool

var amountType = reflect.TypeFor[Amount]()

func collectAmountNames(t reflect.Type, names map[string]bool, seen map[reflect.Type]bool) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || seen[t] {
		return
	}
	seen[t] = true
	for i := range t.NumField() {
		f := t.Field(i)
		name := f.Name
		if tag, ok := f.Tag.Lookup("json"); ok {
			if n, _, _ := cutComma(tag); n == "-" {
				continue
			} else if n != "" {
				name = n
			}
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft == amountType {
			names[name] = true
			continue
		}
		collectAmountNames(f.Type, names, seen)
	}
}

func cutComma(s string) (string, string, bool) {
	for i := range len(s) {
		if s[i] == ',' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// convertAmounts rewrites the named fields of the JSON document raw with
// conv, at any depth. A document that is not JSON is returned unchanged for
// the decoder to reject.
func convertAmounts(raw []byte, names map[string]bool, conv func(json.Number) (json.Number, error)) ([]byte, error) {
	if len(names) == 0 {
		return raw, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return raw, nil
	}
	if err := walkAmounts(doc, names, conv); err != nil {
		return nil, err
	}
	return json.Marshal(doc)
}

func walkAmounts(v any, names map[string]bool, conv func(json.Number) (json.Number, error)) error {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if names[k] {
				var n json.Number
				switch s := val.(type) {
				case json.Number:
					n = s
				case string:
					if s == "" {
						continue
					}
					n = json.Number(s)
				default:
					if err := walkAmounts(val, names, conv); err != nil {
						return err
					}
					continue
				}
				out, err := conv(n)
				if err != nil {
					return fmt.Errorf("%s: %w", k, err)
				}
				x[k] = out
				continue
			}
			if err := walkAmounts(val, names, conv); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range x {
			if err := walkAmounts(e, names, conv); err != nil {
				return err
			}
		}
	}
	return nil
}

func yuanToFenNumber(n json.Number) (json.Number, error) {
	fen, err := platform.YuanToFen(string(n))
	if err != nil {
		return "", err
	}
	return json.Number(strconv.FormatInt(fen, 10)), nil
}

func fenToYuanNumber(n json.Number) (json.Number, error) {
	fen, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		return "", fmt.Errorf("amount %.40q: not whole fen", string(n))
	}
	return json.Number(platform.FenToYuan(fen)), nil
}
