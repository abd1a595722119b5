// The signature check: its verdict from the first answer behind it, and the
// variants of the profile's signing tried when the platform rejects it.

package doctor

import (
	"context"
	"fmt"
	"strings"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/platform"
)

// signatureFrom takes the signature verdict from the first answer that came
// from behind the signature check.
func (r *run) signatureFrom(e platform.Endpoint, res apiclient.ProbeResult, out outcome) {
	if r.sigDecided {
		return
	}
	switch {
	case out.reachedAuth():
		r.sigDecided = true
		how := "answered"
		if out == outIDNotFound {
			how = "looked the made-up id up"
		}
		if out == outFailed {
			how = "answered " + string(res.Class)
		}
		r.confirm("signature", fmt.Sprintf("accepted (%s %s, which comes after the signature check)", e, how))
	case out == outNetwork:
		r.sigWhy = "network: " + errText(res.Err)
	case out == outPathNotFound || out == outAmbiguous:
		r.sigWhy = "path not found: " + string(e) + " answered like an unknown path, before any signature check"
	case out == outUnknownCode:
		r.sigWhy = fmt.Sprintf("%s answered %s, a code the profile does not classify", e, codeMsg(res))
	default:
		r.sigWhy = fmt.Sprintf("%s: %s", e, out)
	}
}

// signatureRejected handles an auth class answer: a bad signature or an
// expired timestamp may be the profile's signing guess, so doctor tries the
// few variants the documentation leaves open on the same call (read-only,
// a handful of calls); an unknown access key or a missing header is the
// configuration's, and stops the run.
func (r *run) signatureRejected(ctx context.Context, purpose string, req apiclient.ProbeRequest, res apiclient.ProbeResult, hasID bool) (apiclient.ProbeResult, outcome) {
	r.sigDecided = true
	switch res.Class {
	case platform.ClassAuthUnknownKey, platform.ClassAuthMissing:
		r.rejected, r.stopped = true, true
		r.unobservable("signature", fmt.Sprintf("the platform refused the credentials (%s: %s): check UPSTREAM_ACCESS_KEY and UPSTREAM_USER_ID", res.Class, codeMsg(res)))
		return res, outAuth
	}
	for _, v := range signatureVariants(r.prof, res.Class == platform.ClassAuthExpiredTimestamp) {
		cfg := r.cfg
		cfg.Profile = v.profile
		client, err := apiclient.New(cfg)
		if err != nil {
			continue
		}
		vres := client.Probe(ctx, req)
		vout := r.classify(vres, hasID)
		r.record(req.Endpoint, purpose+"; signed with "+v.desc, vres, vout)
		// The same call, answered otherwise than with an auth code: the
		// signature passed (even an unclassified code comes after it).
		if vout != outAuth && vout != outNetwork && vout != outRefused {
			r.contradict("signature", fmt.Sprintf("rejected as the profile signs (%s); accepted with %s", codeMsg(res), v.desc))
			for _, ch := range v.changes {
				r.change(ch.Key, ch.Value, fmt.Sprintf("the platform rejected the profile's signature (%s) and accepted %s", codeMsg(res), v.desc))
			}
			r.client, r.prof = client, v.profile
			return vres, vout
		}
	}
	r.contradict("signature", fmt.Sprintf("rejected (%s) as the profile signs and with every variant tried", codeMsg(res)))
	r.decide("signature", fmt.Sprintf("the platform rejects the signature (%s) as the profile computes it and in every variant doctor tried (letter case, timestamp unit, with and without nonce-str). Check UPSTREAM_ACCESS_SECRET first; then ask the platform for its signing rule. An expired timestamp may also be this host's clock.", codeMsg(res)), "")
	r.stopped = true
	return res, outAuth
}

// sigVariant is a signing rule the documentation leaves open.
type sigVariant struct {
	desc    string
	profile *platform.Profile
	changes []Change
}

// signatureVariants returns the profile's signing with one, two or all
// three of: the other letter case, the other timestamp unit, nonce-str left
// out (the v2 pages list no nonce). An expired-timestamp answer tries the
// timestamp unit first.
func signatureVariants(p *platform.Profile, timestampFirst bool) []sigVariant {
	type toggle struct {
		desc  string
		key   string
		value any
		apply func(*platform.SignatureFacts)
	}
	s := p.Signature
	otherCase := map[string]string{"upper": "lower", "lower": "upper"}[s.LetterCase]
	otherUnit := map[string]string{"ms": "s", "s": "ms"}[s.TimestampUnit]
	toggles := []toggle{
		{"letter_case " + otherCase, "signature.letter_case", otherCase, func(f *platform.SignatureFacts) { f.LetterCase = otherCase }},
		{"timestamp_unit " + otherUnit, "signature.timestamp_unit", otherUnit, func(f *platform.SignatureFacts) { f.TimestampUnit = otherUnit }},
	}
	if timestampFirst {
		toggles[0], toggles[1] = toggles[1], toggles[0]
	}
	var withoutNonce []string
	for _, part := range s.Parts {
		if part != platform.PartNonce {
			withoutNonce = append(withoutNonce, part)
		}
	}
	if len(withoutNonce) < len(s.Parts) {
		toggles = append(toggles, toggle{"parts without nonce-str", "signature.parts", withoutNonce,
			func(f *platform.SignatureFacts) { f.Parts = withoutNonce }})
	}
	var out []sigVariant
	for size := 1; size <= len(toggles); size++ {
		for mask := 1; mask < 1<<len(toggles); mask++ {
			if bitCount(mask) != size {
				continue
			}
			prof := *p // a copy: the derived lookup tables are shared, read-only
			prof.Signature.Parts = append([]string(nil), s.Parts...)
			var descs []string
			var changes []Change
			for i, t := range toggles {
				if mask&(1<<i) != 0 {
					t.apply(&prof.Signature)
					descs = append(descs, t.desc)
					changes = append(changes, Change{Key: t.key, Value: t.value})
				}
			}
			out = append(out, sigVariant{desc: strings.Join(descs, " and "), profile: &prof, changes: changes})
		}
	}
	return out
}

func bitCount(n int) int {
	c := 0
	for ; n > 0; n &= n - 1 {
		c++
	}
	return c
}
