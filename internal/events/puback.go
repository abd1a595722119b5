package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// decodePubAck decodes the stream's answer. The server writes successful
// acks in one fixed shape, {"stream":"S","seq":N} with an optional
// ,"duplicate": true, which is read without encoding/json; anything else
// (errors, domains, batches) goes through encoding/json. When the stream is
// named knownStream, that string is used rather than a new copy.
func decodePubAck(d []byte, knownStream string) (Ack, error) {
	if ack, ok := fastPubAck(d, knownStream); ok {
		return ack, nil
	}
	var r struct {
		Error *struct {
			Code        int    `json:"code"`
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
		Stream    string `json:"stream"`
		Seq       uint64 `json:"seq"`
		Duplicate bool   `json:"duplicate"`
	}
	if err := json.Unmarshal(d, &r); err != nil {
		return Ack{}, fmt.Errorf("invalid jetstream ack: %w", err)
	}
	if r.Error != nil {
		return Ack{}, fmt.Errorf("jetstream error %d/%d: %s", r.Error.Code, r.Error.ErrCode, r.Error.Description)
	}
	if r.Stream == "" {
		return Ack{}, errors.New("invalid jetstream ack: no stream")
	}
	return Ack{Stream: r.Stream, Sequence: r.Seq, Duplicate: r.Duplicate}, nil
}

func fastPubAck(d []byte, knownStream string) (Ack, bool) {
	const pre = `{"stream":"`
	const seqKey = `","seq":`
	if !bytes.HasPrefix(d, []byte(pre)) {
		return Ack{}, false
	}
	rest := d[len(pre):]
	q := bytes.IndexByte(rest, '"')
	if q <= 0 || bytes.IndexByte(rest[:q], '\\') >= 0 || !bytes.HasPrefix(rest[q:], []byte(seqKey)) {
		return Ack{}, false
	}
	stream := rest[:q]
	rest = rest[q+len(seqKey):]
	var seq uint64
	i := 0
	for ; i < len(rest) && rest[i] >= '0' && rest[i] <= '9' && i < 19; i++ {
		seq = seq*10 + uint64(rest[i]-'0')
	}
	if i == 0 {
		return Ack{}, false
	}
	rest = rest[i:]
	ack := Ack{Stream: knownStream, Sequence: seq}
	if string(stream) != knownStream {
		ack.Stream = string(stream)
	}
	switch {
	case len(rest) == 1 && rest[0] == '}':
	case bytes.Equal(rest, []byte(`,"duplicate": true}`)) || bytes.Equal(rest, []byte(`,"duplicate":true}`)):
		ack.Duplicate = true
	default:
		return Ack{}, false
	}
	return ack, true
}

// connMux sends the Publisher's requests on one connection and hands each
// reply to its waiting publisher, like nats.go's Conn.RequestMsg but with
