package events_test

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/events/eventstest"
)

func TestRedactURLs(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://user:secret@nats.example:4222", "nats://nats.example:4222"},
		{"nats://s3cr3ttoken@a:4222, tls://u:p@b:4223", "nats://a:4222,tls://b:4223"},
		{"127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://%zz:pw@host", "nats://…@host"},
		{"nats://%zz", "<unparsable URL>"},
		// A token or password with "/", "?" or "#" parses, wrongly: the
		// "@" lands in the path, query or fragment, with the secret.
		{"nats://AbC+dE/fG==@h:4222", "nats://…@h:4222"},
		{"nats://user:/x@h:4222", "nats://…@h:4222"},
		{"nats://user:12?x@h:4222", "nats://…@h:4222"},
		{"nats://tok#en@h:4222,nats://u:p@g:4222", "nats://…@h:4222,nats://g:4222"},
		{"", ""},
	} {
		if got := events.RedactURLs(tc.in); got != tc.want {
			t.Errorf("RedactURLs(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

// TestNotUp: a connection still trying its first server is "not up"; one
// connected to a running server is not.
func TestNotUp(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	nc, err := nats.Connect("nats://"+addr, events.ConnectOptions("test")...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if !events.NotUp(js) {
		t.Errorf("NotUp(connection to %s, where nothing listens) = false; want true", addr)
	}

	ns := eventstest.Start(t)
	if events.NotUp(ns.JetStream()) {
		t.Errorf("NotUp(connected to %s) = true; want false", ns.URL())
	}
}

// TestConnectErrorShowsNoPassword: nats.Connect's own error for a URL that
// does not parse quotes the URL, password included; ConnectError keeps the
// fact and the servers redacted, and still wraps every other error.
func TestConnectErrorShowsNoPassword(t *testing.T) {
	for _, urls := range []string{
		"nats://user:hunter2@127.0.0.1:1,nats://user:hunter3@127.0.0.1:2",
		"nats://user:hun/ter2@127.0.0.1:1",
		"nats://user:hunter2#x@127.0.0.1:1",
		"nats://user:hunter2%zz@127.0.0.1:1",
	} {
		_, err := nats.Connect(urls, nats.Timeout(time.Second), nats.NoReconnect())
		if err == nil {
			t.Fatalf("%s: connected", urls)
		}
		got := events.ConnectError(urls, err)
		if strings.Contains(got.Error(), "hunter") || !strings.HasPrefix(got.Error(), "connect to NATS at ") {
			t.Errorf("%s: %v; want the servers named without a password", urls, got)
		}
	}
	_, err := nats.Connect("nats://user:hunter2@127.0.0.1:1", nats.Timeout(time.Second), nats.NoReconnect())
	if got := events.ConnectError("nats://user:hunter2@127.0.0.1:1", err); !errors.Is(got, nats.ErrNoServers) ||
		got.Error() != "connect to NATS at nats://127.0.0.1:1: "+nats.ErrNoServers.Error() {
		t.Errorf("no server: %v; want the client's error wrapped, the URL without its password", got)
	}
}
