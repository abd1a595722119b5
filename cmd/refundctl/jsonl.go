package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/refundhub/refundhub/internal/callback"
	"github.com/refundhub/refundhub/internal/events"
)

// maxLineBytes bounds one JSON Lines record: the stream's message size limit.
const maxLineBytes = events.DefaultMaxMsgSize

// fileRecord is one callback envelope read from a JSON Lines file.
type fileRecord struct {
	Line    int    // 1-based line number
	Raw     []byte // the line, without surrounding whitespace: the body to send
	Subject string // where the receiver would publish it
	Event   callback.Event
}

// parseJSONL reads one platform envelope per line (blank lines skipped, CRLF
// and a leading UTF-8 BOM tolerated) and validates each exactly as the
// receiver does. Any bad line fails the whole file, so nothing is sent from
// a file with a typo.
func parseJSONL(r io.Reader, parser *callback.Parser) ([]fileRecord, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var out []fileRecord
	for n := 1; ; n++ {
		line, err := readLine(br, maxLineBytes)
		if errors.Is(err, errLineTooLong) {
			return nil, fmt.Errorf("line %d: longer than %d bytes", n, maxLineBytes)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if n == 1 {
			line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
		}
		if trimmed := bytes.TrimSpace(line); len(trimmed) > 0 {
			ev, perr := parser.Parse(trimmed)
			if perr != nil {
				return nil, fmt.Errorf("line %d: %w", n, perr)
			}
			rec := fileRecord{Line: n, Raw: append([]byte(nil), trimmed...), Event: ev}
			if ev.Parked() {
				rec.Subject = events.ParkedSubject(ev.Platform.String())
			} else {
				rec.Subject = events.AcceptedSubject(ev.Platform.String(), ev.Type)
			}
			out = append(out, rec)
		}
		if errors.Is(err, io.EOF) {
			return out, nil
		}
	}
}

var errLineTooLong = errors.New("line too long")

// readLine returns the next line without its '\n', or io.EOF with the last
// (possibly empty) line; a line over max bytes is errLineTooLong.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > max+2 { // +2: the line ending
			return nil, errLineTooLong
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			return bytes.TrimSuffix(line, []byte("\n")), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return line, err
		}
	}
}
