package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// poster POSTs callback bodies to the receiver exactly as the platform
// would: POST <RECEIVER_URL>/callbacks/<token>, Content-Type
// application/json, the raw bytes as the body. When signing secrets are
// configured it adds Standard Webhooks headers signed with the first.
type poster struct {
	client   *http.Client
	endpoint string // with the token: never printed
	shown    string // with the token masked: for messages
	signer   *standardwebhooks.Webhook
}

// newPoster checks the receiver settings. Errors never contain the token.
func (a *app) newPoster() (*poster, error) {
	u, err := url.Parse(a.cfg.ReceiverURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || atOutsideUserInfo(u) {
		return nil, usagef("receiver URL %q: want http(s)://host[:port]%s", cell(redactURL(a.cfg.ReceiverURL), 80), encodeHint(a.cfg.ReceiverURL))
	}
	if a.cfg.Token == "" {
		return nil, errors.New("CALLBACK_TOKEN is not set: the receiver's callback URL needs it")
	}
	if a.cfg.Timeout <= 0 {
		return nil, usagef("--timeout %s: must be positive", a.cfg.Timeout)
	}
	u.User = nil
	base := strings.TrimSuffix(u.String(), "/")
	p := &poster{
		client:   &http.Client{Timeout: a.cfg.Timeout},
		endpoint: base + "/callbacks/" + url.PathEscape(a.cfg.Token),
		shown:    base + "/callbacks/***",
	}
	if len(a.cfg.SigningSecrets) > 0 {
		wh, err := standardwebhooks.NewWebhook(a.cfg.SigningSecrets[0])
		if err != nil {
			return nil, errors.New("CALLBACK_SIGNING_SECRETS: the first secret is not whsec_<base64>")
		}
		p.signer = wh
	}
	return p, nil
}

// postResult is the receiver's answer.
type postResult struct {
	Status int
	Body   string // at most 4 KiB, trimmed
}

// post sends body and returns the receiver's answer; a transport failure is
// an error (with the token masked), any HTTP status is a result.
func (p *poster) post(ctx context.Context, body []byte) (postResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.endpoint, bytes.NewReader(body))
	if err != nil {
		return postResult{}, fmt.Errorf("post to %s: bad request", p.shown)
	}
	req.Header.Set("Content-Type", "application/json")
	if p.signer != nil {
		var b [12]byte
		if _, err := rand.Read(b[:]); err != nil {
			return postResult{}, fmt.Errorf("webhook id: %w", err)
		}
		id := "msg_" + hex.EncodeToString(b[:])
		now := time.Now()
		sig, err := p.signer.Sign(id, now, body)
		if err != nil {
			return postResult{}, fmt.Errorf("sign: %w", err)
		}
		req.Header.Set(standardwebhooks.HeaderWebhookID, id)
		req.Header.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
		req.Header.Set(standardwebhooks.HeaderWebhookSignature, sig)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error quotes the URL, which holds the token
		}
		return postResult{}, fmt.Errorf("post to %s: %w", p.shown, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return postResult{Status: resp.StatusCode, Body: strings.TrimSpace(string(b))}, nil
}

// ok reports a 2xx answer.
func (r postResult) ok() bool { return r.Status >= 200 && r.Status < 300 }

// String is "200 OK: {…}".
func (r postResult) String() string {
	s := strconv.Itoa(r.Status) + " " + http.StatusText(r.Status)
	if r.Body != "" {
		s += ": " + cell(r.Body, 300)
	}
	return s
}
