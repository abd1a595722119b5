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
	for _, known := range []string{"", "CALLBACKS", "OTHER"} {
		for _, c := range cases {
			got, err := decodePubAck([]byte(c.in), known)
			if (err != nil) != c.wantErr || got != c.want {
				t.Errorf("decodePubAck(%s, %q) = %+v, %v; want %+v, error %v", c.in, known, got, err, c.want, c.wantErr)
			}
		}
	}
}

// The usual ack allocates nothing once the stream name is known.
func TestDecodePubAckKnownStreamAllocs(t *testing.T) {
	d := []byte(`{"stream":"CALLBACKS","seq":42}`)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := decodePubAck(d, "CALLBACKS"); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("decodePubAck with the known stream: %v allocations; want 0", allocs)
	}
}
