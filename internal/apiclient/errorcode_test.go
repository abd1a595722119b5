package apiclient

import (
	"fmt"
	"testing"
)

func TestErrorCodeIn(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&APIError{Endpoint: "refund.apply", Code: 4001, Msg: `bad "reason", try again`, RequestID: "r1"}, "4001"},
		{&APIError{Endpoint: "refund.apply", Code: -7}, "-7"},
		{&APIError{Endpoint: "refund.apply", Code: 200, NestedCode: "isSuccess=false", NestedMsg: "no"}, "isSuccess=false"},
		{&HTTPError{Endpoint: "refund.query", StatusCode: 502, Body: "bad gateway"}, "http 502"},
		{&HTTPError{Endpoint: "refund.query", StatusCode: 429, Code: 1029, Msg: "slow down"}, "1029"},
		{fmt.Errorf("retry after 30s: %w", &HTTPError{Endpoint: "refund.query", StatusCode: 503}), "http 503"},
		{fmt.Errorf("case 7 not found"), ""},
	} {
		if got := ErrorCodeIn(tc.err.Error()); got != tc.want {
			t.Errorf("ErrorCodeIn(%q) = %q; want %q", tc.err.Error(), got, tc.want)
		}
	}
}
