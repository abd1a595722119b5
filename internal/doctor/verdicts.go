// Verdicts from single answers: whether an endpoint's path and method are
// served, and what the answer to a made-up refund id says about not_found.

package doctor

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/platform"
)

// pathVerdict checks an endpoint's path and method from one answer.
func (r *run) pathVerdict(e platform.Endpoint, res apiclient.ProbeResult, out outcome) {
	key := endpointKey(e)
	f := r.prof.Endpoint(e)
	if out != outSuccess && out != outUndecodable && len(r.agg(decodeKey(e)).confirmed) == 0 {
		r.unobservable(decodeKey(e), fmt.Sprintf("no data (%s: %s)", strings.ReplaceAll(string(out), "_", " "), codeMsg(res)))
	}
	switch out {
	case outSuccess, outUndecodable, outLooksSuccess, outFailed, outIDNotFound, outUnknownCode:
		r.confirm(key, fmt.Sprintf("%s %s answers", res.Method, res.Path))
	case outPathNotFound:
		r.contradict(key, fmt.Sprintf("%s %s: not found (HTTP %d%s, as for a path the platform does not serve)", res.Method, res.Path, res.HTTPStatus, envCode(res)))
		r.decide(key+".path", fmt.Sprintf("%s answered \"not found\" at %s. A moved path cannot be guessed: find it in the platform's documentation (or ask the platform) and set it", e, f.Path),
			fmt.Sprintf("%s.path = \"<the real path>\"", key))
	case outMethod:
		allow := strings.ToUpper(strings.TrimSpace(res.Header.Get("Allow")))
		r.contradict(key, fmt.Sprintf("%s %s: method not allowed (Allow: %s)", res.Method, res.Path, allow))
		if (allow == http.MethodGet && idOnly(e)) || allow == http.MethodPost {
			r.change(key+".method", allow, fmt.Sprintf("%s answered 405 to %s, allowing %s", f.Path, f.Method, allow))
		} else {
			r.decide(key+".method", fmt.Sprintf("%s refused %s (HTTP 405, Allow %q)", f.Path, f.Method, allow), "")
		}
	case outAmbiguous:
		r.unobservable(key, "answered not found exactly as for a path the platform does not serve: the path or the id is wrong")
	case outAuth:
		r.unobservable(key, "the signature was rejected")
	default:
		if len(r.agg(key).confirmed) == 0 {
			r.unobservable(key, fmt.Sprintf("no usable answer (%s)", out))
		}
	}
}

// refundFound notes a --refund the platform does not know.
func (r *run) refundFound(e platform.Endpoint, id string, out outcome) {
	switch out {
	case outIDNotFound:
		r.note(endpointKey(e), "refund "+id+" not found: check --refund")
	case outAmbiguous:
		r.note(endpointKey(e), "refund "+id+" or the path is unknown")
	}
}

// idOnly reports whether an endpoint's only argument is a refund id, so a
// GET can carry it.
func idOnly(e platform.Endpoint) bool {
	switch e {
	case platform.TaobaoQuery, platform.TaobaoReturnLogisticsRender, platform.TaobaoCancel,
		platform.AlibabaRefundInfo, platform.AlibabaLogisticsCompanies:
		return true
	}
	return false
}

// notFoundVerdict reads the answer to the made-up refund id.
func (r *run) notFoundVerdict(res apiclient.ProbeResult, out outcome) {
	p := r.prof
	switch out {
	case outIDNotFound, outUnknownCode, outFailed:
	case outAmbiguous:
		r.unobservable("error_codes.not_found", "the made-up id was answered exactly as an unknown path")
		return
	case outSuccess, outUndecodable, outLooksSuccess:
		r.unobservable("error_codes.not_found", "the made-up id exists")
		return
	default:
		return
	}
	code := res.Envelope.Code
	switch out {
	case outIDNotFound:
		r.confirm("error_codes.not_found", fmt.Sprintf("%s for a made-up refund id", codeMsg(res)))
	case outUnknownCode:
		r.contradict("error_codes.not_found", fmt.Sprintf("%s for a made-up refund id, a code no class lists", codeMsg(res)))
		r.decide("error_codes.not_found", fmt.Sprintf("a made-up refund id was answered %s; if that means \"not found\", list it (the worker decides on this class)", codeMsg(res)),
			fmt.Sprintf("error_codes.not_found = %s", tomlInts(append([]int{code}, p.ErrorCodes.NotFound...))))
	case outFailed:
		r.unobservable("error_codes.not_found", fmt.Sprintf("a made-up refund id was answered %s, not not_found", codeMsg(res)))
	}
	if res.HTTPStatus == p.Envelope.ErrorHTTPStatus {
		r.confirm("envelope.error_http_status", fmt.Sprintf("HTTP %d with %s", res.HTTPStatus, codeMsg(res)))
	} else {
		r.contradict("envelope.error_http_status", fmt.Sprintf("HTTP %d with %s", res.HTTPStatus, codeMsg(res)))
		r.change("envelope.error_http_status", res.HTTPStatus, fmt.Sprintf("a failure (%s) came with HTTP %d", codeMsg(res), res.HTTPStatus))
	}
}
