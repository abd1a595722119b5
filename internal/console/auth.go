package console

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Role is what an account may do: a viewer reads, an operator also acts.
type Role string

// The roles.
const (
	RoleViewer   Role = "viewer"
	RoleOperator Role = "operator"
)

// Account is one API token's holder: a name for the timeline and the logs,
// a role, and the SHA-256 of the token (the token itself is never kept).
type Account struct {
	Name string
	Role Role
	hash [sha256.Size]byte
}

// CanAct reports whether the account may issue commands.
func (a Account) CanAct() bool { return a.Role == RoleOperator }

var accountName = regexp.MustCompile(`^[A-Za-z0-9_.@-]{1,64}$`)

// ParseAccounts reads CONSOLE_TOKENS: entries name:role:sha256-hex-of-token,
// separated by commas or newlines (a file may have one per line, and lines
// starting with # are comments). Names and hashes must be unique. Errors
// name the entry by its position and name, never its hash.
func ParseAccounts(spec string) ([]Account, error) {
	var out []Account
	names, hashes := map[string]bool{}, map[[sha256.Size]byte]bool{}
	n := 0
	for _, line := range strings.Split(spec, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, e := range strings.Split(line, ",") {
			e = strings.TrimSpace(e)
			if e == "" {
				continue
			}
			n++
			parts := strings.Split(e, ":")
			if len(parts) != 3 {
				return nil, fmt.Errorf("token entry %d: want name:role:sha256-hex", n)
			}
			name, role, hexHash := parts[0], Role(parts[1]), strings.ToLower(parts[2])
			if !accountName.MatchString(name) {
				return nil, fmt.Errorf("token entry %d: name: 1 to 64 of A-Z a-z 0-9 _ . @ -", n)
			}
			if role != RoleViewer && role != RoleOperator {
				return nil, fmt.Errorf("token entry %d (%s): role %q: want viewer or operator", n, name, parts[1])
			}
			b, err := hex.DecodeString(hexHash)
			if err != nil || len(b) != sha256.Size {
				return nil, fmt.Errorf("token entry %d (%s): want the token's SHA-256 as 64 hex digits (e.g. printf %%s \"$TOKEN\" | sha256sum)", n, name)
			}
			a := Account{Name: name, Role: role}
			copy(a.hash[:], b)
			if names[name] {
				return nil, fmt.Errorf("token entry %d: name %s appears twice", n, name)
			}
			if hashes[a.hash] {
				return nil, fmt.Errorf("token entry %d (%s): the same token as an earlier entry", n, name)
			}
			names[name], hashes[a.hash] = true, true
			out = append(out, a)
		}
	}
	return out, nil
}

// HashToken is the form CONSOLE_TOKENS stores a token in: its SHA-256, hex.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// accounts looks accounts up by token and by name.
type accounts struct {
	list []Account
}

// byToken returns the account whose token is tok. Every hash is compared,
// in constant time, whichever matches: the time taken says nothing about
// which account (if any) the token belongs to.
func (as accounts) byToken(tok string) (Account, bool) {
	if tok == "" {
		return Account{}, false
	}
	h := sha256.Sum256([]byte(tok))
	found, ok := Account{}, false
	for _, a := range as.list {
		if subtle.ConstantTimeCompare(h[:], a.hash[:]) == 1 {
			found, ok = a, true
		}
	}
	return found, ok
}

// byName returns the configured account called name: a session stays
// valid only while its account is configured with the same role, so
// removing a token from CONSOLE_TOKENS (and restarting) ends its sessions.
func (as accounts) byName(name string) (Account, bool) {
	for _, a := range as.list {
		if a.Name == name {
			return a, true
		}
	}
	return Account{}, false
}

// sessionCookie is the name of the console's session cookie.
const sessionCookie = "refundhub_console"

// sessions signs and checks session cookies and the CSRF tokens bound to
// them, with HMAC-SHA256 under CONSOLE_SESSION_KEY. A cookie holds the
// account name, its role and an expiry; nothing is kept on the server, so
// a restart keeps sessions and a changed key ends them all.
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

// loginLimiter slows failed logins per remote address: each failure takes
// a token from the address's bucket, and an address with an empty bucket
// is refused (429) before its token is even checked, so guessing runs at
// the refill rate at best. Successful logins cost nothing.
type loginLimiter struct {
	mu    sync.Mutex
	every rate.Limit
	burst int
	by    map[string]*rate.Limiter
}

// maxLimiters bounds the addresses remembered; beyond it the map starts
// again (an attacker with that many addresses is not slowed by this
// anyway).
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

// blocked reports whether addr has used up its failed attempts for now.
func (l *loginLimiter) blocked(addr string) bool { return l.get(addr).Tokens() < 1 }

// failed counts a failed attempt of addr.
func (l *loginLimiter) failed(addr string) { l.get(addr).Allow() }
