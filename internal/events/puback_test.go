package events

import "testing"

func TestDecodePubAck(t *testing.T) {
	cases := []struct {
		in      string
		want    Ack
		wantErr bool
	}{
		{`{"stream":"CALLBACKS","seq":42}`, Ack{Stream: "CALLBACKS", Sequence: 42}, false},
		{`{"stream":"CALLBACKS","seq":42,"duplicate": true}`, Ack{Stream: "CALLBACKS", Sequence: 42, Duplicate: true}, false},
		{`{"stream":"CALLBACKS","seq":42,"duplicate":true}`, Ack{Stream: "CALLBACKS", Sequence: 42, Duplicate: true}, false},
		{`{"stream":"CALLBACKS","domain":"hub","seq":7}`, Ack{Stream: "CALLBACKS", Sequence: 7}, false},
		{`{"stream":"S","seq":1,"duplicate": true,"batch":"b","count":2}`, Ack{Stream: "S", Sequence: 1, Duplicate: true}, false},
		{`{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}`, Ack{}, true},
		{`{"stream":"","seq":1}`, Ack{}, true},
		{`{"stream":"S","seq":}`, Ack{}, true},
		{`not json`, Ack{}, true},
		{``, Ack{}, true},
	}
	for _, c := range cases {
		got, err := decodePubAck([]byte(c.in))
		if (err != nil) != c.wantErr || got != c.want {
			t.Errorf("decodePubAck(%s) = %+v, %v; want %+v, error %v", c.in, got, err, c.want, c.wantErr)
		}
	}
}
