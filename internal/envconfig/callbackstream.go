package envconfig

import (
	"strconv"
	"time"

	"github.com/refundhub/refundhub/internal/callback"
	"github.com/refundhub/refundhub/internal/events"
)

// CallbackStreamVars documents the callback stream's settings and the push
// size limit that sizes its messages. The receiver owns the stream (it
// creates or updates it to these settings); the worker creates it only when
// it starts first and otherwise leaves it alone. Both list these entries in
// their tables and read them with Reader.CallbackStream, so that the same
// environment always describes the same stream, whichever process creates
// it. It returns a new slice each time, for the caller to append to.
func CallbackStreamVars() []Var {
	return []Var{
		V("CALLBACK_MAX_BYTES", strconv.Itoa(callback.DefaultMaxBytes), "callback request body limit in bytes: the receiver answers 413 above it; when it exceeds the stream's default max message size (1 MiB), that is raised to it plus 4 KiB of headers"),
		V("CALLBACK_STREAM", events.DefaultStreamName, "callback stream name (subjects callbacks.> and parked.callbacks.>)"),
		V("CALLBACK_STREAM_MAX_AGE", events.DefaultMaxAge.String(), "callback stream max age"),
		V("CALLBACK_STREAM_REPLICAS", strconv.Itoa(events.DefaultReplicas), "stream replicas (1 single server, 3 in a cluster)"),
		V("CALLBACK_STREAM_MAX_BYTES", strconv.Itoa(events.DefaultMaxBytes), "callback stream size cap in bytes; when it is full the stream discards new messages (Discard new): the receiver answers 503 and the platform retries, and no stored callback is deleted to make room (only the max age expires them)"),
		V("CALLBACK_STREAM_DUPLICATES", events.DefaultDuplicates.String(), "callback stream Nats-Msg-Id duplicate window"),
	}
}

// CallbackStream reads CallbackStreamVars: the callback stream's
// configuration and the push size limit (CALLBACK_MAX_BYTES). A stored
// message is the push plus the events headers, so MaxMsgSize is raised
// above its default to the limit plus 4 KiB of headers when the limit needs it.
func (r *Reader) CallbackStream() (stream events.StreamConfig, maxBody int64) {
	maxBody = r.Int64("CALLBACK_MAX_BYTES", 1, 16<<20)
	stream = events.DefaultStreamConfig()
	stream.Name = r.String("CALLBACK_STREAM")
	stream.MaxAge = r.Duration("CALLBACK_STREAM_MAX_AGE", time.Minute, 10*365*24*time.Hour)
	stream.Duplicates = r.Duration("CALLBACK_STREAM_DUPLICATES", 100*time.Millisecond, 7*24*time.Hour)
	stream.Replicas = r.Int("CALLBACK_STREAM_REPLICAS", 1, 5)
	stream.MaxBytes = r.Int64("CALLBACK_STREAM_MAX_BYTES", 1, 1<<50)
	if int64(stream.MaxMsgSize) < maxBody {
		stream.MaxMsgSize = int32(min(maxBody+4096, 1<<30))
	}
	r.Fail(stream.Validate())
	return stream, maxBody
}
