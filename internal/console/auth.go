package console

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"github.com/refundhub/refundhub/internal/casestore"
)

// Role is what an account may do: a viewer reads, an operator also acts.
// The case store owns the list (its accounts table checks it).
type Role = casestore.Role

// The roles.
const (
	RoleViewer   = casestore.RoleViewer
	RoleOperator = casestore.RoleOperator
)

// Account is the caller of a request: a name for the timeline and the
// logs, and a role. Accounts live in the case store (refundctl console
// users); the console reads them on every request and never writes them.
type Account struct {
	Name string
	Role Role
}

// CanAct reports whether the account may issue commands.
func (a Account) CanAct() bool { return a.Role == RoleOperator }

// sessionCookie is the name of the console's session cookie.
const sessionCookie = "refundhub_console"

// sessions signs and checks session cookies and the CSRF tokens bound to
// them, with HMAC-SHA256 under CONSOLE_SESSION_KEY. A cookie holds the
// account name, its role and an expiry; nothing is kept on the server, so
// a restart keeps sessions and a changed key ends them all. The account
// behind a valid cookie is read from the case store on every request
// (Server.sessionAccount), so disabling it or changing its role ends its
// sessions at once.
type sessions struct {
	key    []byte
	ttl    time.Duration
	secure bool
}

func (s sessions) mac(purpose, v string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(purpose + "\n" + v))
	return m.Sum(nil)
}

// issue returns the cookie for a, valid for the session TTL from now.
func (s sessions) issue(a Account, now time.Time) *http.Cookie {
	payload := a.Name + "\n" + string(a.Role) + "\n" + strconv.FormatInt(now.Add(s.ttl).Unix(), 10)
	enc := base64.RawURLEncoding
	v := enc.EncodeToString([]byte(payload)) + "." + enc.EncodeToString(s.mac("session", payload))
	return &http.Cookie{Name: sessionCookie, Value: v, Path: "/", MaxAge: int(s.ttl.Seconds()),
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteStrictMode}
}

// expired is the cookie that ends a session in the browser.
func (s sessions) expired() *http.Cookie {
	return &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteStrictMode}
}

var errBadSession = errors.New("invalid or expired session")

// check returns the name and role a cookie value was issued for, if its
// signature holds and it has not expired.
func (s sessions) check(v string, now time.Time) (string, Role, error) {
	p64, m64, ok := strings.Cut(v, ".")
	if !ok {
		return "", "", errBadSession
	}
	enc := base64.RawURLEncoding
	payload, err1 := enc.DecodeString(p64)
	mac, err2 := enc.DecodeString(m64)
	if err1 != nil || err2 != nil || !hmac.Equal(mac, s.mac("session", string(payload))) {
		return "", "", errBadSession
	}
	parts := strings.Split(string(payload), "\n")
	if len(parts) != 3 {
		return "", "", errBadSession
	}
	exp, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || now.Unix() >= exp {
		return "", "", errBadSession
	}
	return parts[0], Role(parts[1]), nil
}

// csrf is the CSRF token of the session whose cookie value is v: bound to
// the session, so a token seen in one session is worthless in another,
// and derivable without server state.
func (s sessions) csrf(v string) string {
	return base64.RawURLEncoding.EncodeToString(s.mac("csrf", v))
}

// csrfOK reports whether given is the CSRF token of session v.
func (s sessions) csrfOK(v, given string) bool {
	want := s.csrf(v)
	return given != "" && subtle.ConstantTimeCompare([]byte(given), []byte(want)) == 1
}

// loginLimiter slows failed logins per key (a remote address, or an
// account name): each failure takes a token from the key's bucket, and a
// key with an empty bucket is refused (429) before its password is even
// checked, so guessing runs at the refill rate at best. Successful logins
// cost nothing.
type loginLimiter struct {
	mu    sync.Mutex
	every rate.Limit
	burst int
	by    map[string]*rate.Limiter
}

// maxLimiters bounds the keys remembered; beyond it the map starts again
// (an attacker with that many addresses is not slowed by the address
// limiter anyway, and the account limiter keys only well-formed names).
const maxLimiters = 10000

func newLoginLimiter(every rate.Limit, burst int) *loginLimiter {
	return &loginLimiter{every: every, burst: burst, by: map[string]*rate.Limiter{}}
}

func (l *loginLimiter) get(addr string) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.by[addr]
	if !ok {
		if len(l.by) >= maxLimiters {
			l.by = map[string]*rate.Limiter{}
		}
		lim = rate.NewLimiter(l.every, l.burst)
		l.by[addr] = lim
	}
	return lim
}

// blocked reports whether key has used up its failed attempts for now.
func (l *loginLimiter) blocked(key string) bool { return l.get(key).Tokens() < 1 }

// failed counts a failed attempt of key.
func (l *loginLimiter) failed(key string) { l.get(key).Allow() }

// errAccountRateLimited answers a login for an account whose password has
// been guessed at too often, from whatever addresses. It says so whether
// or not the account exists (unknown names are counted alike).
var errAccountRateLimited = &Error{Code: CodeRateLimited, Message: "too many failed logins for this account; wait a minute"}

// tokenAccount returns the holder of a bearer token: a token not revoked,
// of an account not disabled, found by its hash in the case store on every
// request, so that revoking it or disabling its account takes effect at
// once. errUnauthorized for any other token.
func (s *Server) tokenAccount(c echo.Context, tok string) (Account, error) {
	a, _, err := s.store.AccountByToken(c.Request().Context(), tok)
	switch {
	case errors.Is(err, casestore.ErrNotFound):
		return Account{}, errUnauthorized
	case err != nil:
		return Account{}, err
	}
	return Account{Name: a.Name, Role: a.Role}, nil
}

// sessionAccount returns the account of a session cookie value: its
// signature holds, it has not expired, and its account still exists, is
// not disabled and has the role the session was opened with. ok is false
// otherwise; err is a store failure.
func (s *Server) sessionAccount(c echo.Context, v string) (Account, bool, error) {
	name, role, err := s.sessions.check(v, s.now())
	if err != nil {
		return Account{}, false, nil
	}
	a, err := s.store.AccountByName(c.Request().Context(), name)
	switch {
	case errors.Is(err, casestore.ErrNotFound):
		return Account{}, false, nil
	case err != nil:
		return Account{}, false, err
	}
	if a.Disabled() || a.Role != role {
		return Account{}, false, nil
	}
	return Account{Name: a.Name, Role: a.Role}, true, nil
}
