package casestore

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"golang.org/x/crypto/bcrypt"
)

// The console's accounts and API tokens (migration 15). The store owns
// how a password and a token are kept (bcrypt; SHA-256) so that refundctl,
// which writes them, and the console, which checks them, cannot disagree.

// Role is what a console account may do: a viewer reads, an operator also
// acts. The schema's CHECK lists the same two.
type Role string

// The roles.
const (
	RoleViewer   Role = "viewer"
	RoleOperator Role = "operator"
)

// Valid reports whether r is one of the roles.
func (r Role) Valid() bool { return r == RoleViewer || r == RoleOperator }

// Errors of the account and token methods, for errors.Is. A missing
// account or token is ErrNotFound.
var (
	// ErrAccountExists: the name is taken, by an active or a disabled
	// account (names are never reused).
	ErrAccountExists = errors.New("casestore: an account with this name exists")
	// ErrAccountDisabled: the account was disabled.
	ErrAccountDisabled = errors.New("casestore: account disabled")
	// ErrTokenRevoked: the token was revoked.
	ErrTokenRevoked = errors.New("casestore: token revoked")
	// ErrWrongPassword: the name and password do not match an active account.
	ErrWrongPassword = errors.New("casestore: wrong name or password")
)

// Account is a console account. Its password hash never leaves the
// package: CheckPassword compares it.
type Account struct {
	Name        string
	Role        Role
	CreatedAt   time.Time
	CreatedBy   string
	DisabledAt  time.Time // zero while active
	DisabledBy  string
	DisableNote string
	Tokens      int // API tokens not revoked (Accounts fills it)

	id           int64
	passwordHash []byte
}

// Disabled reports whether the account was disabled.
func (a Account) Disabled() bool { return !a.DisabledAt.IsZero() }

// APIToken is one API token's record; the token itself is not kept.
type APIToken struct {
	ID         int64
	Account    string
	Label      string
	CreatedAt  time.Time
	CreatedBy  string
	RevokedAt  time.Time // zero while valid
	RevokedBy  string
	RevokeNote string
}

// Revoked reports whether the token was revoked.
func (t APIToken) Revoked() bool { return !t.RevokedAt.IsZero() }

var accountNameRE = regexp.MustCompile(`^[A-Za-z0-9_.@-]{1,64}$`)

// CheckAccountName returns why name cannot name an account, or nil. Names
// go on the timeline as the operator of a command, so they are short and
// plain.
func CheckAccountName(name string) error {
	if !accountNameRE.MatchString(name) {
		return errors.New("1 to 64 of A-Z a-z 0-9 _ . @ -")
	}
	return nil
}

// Password rules. bcrypt reads at most 72 bytes of a password; a longer
// one would be silently cut, so it is refused instead.
const (
	MinPasswordLen = 12
	MaxPasswordLen = 72
)

// DefaultPasswordCost is the bcrypt cost of production passwords: a
// quarter to half a second per hash on this project's hosts, the price of
// each guess beside the console's login limiters. Tests hash at
// bcrypt.MinCost.
const DefaultPasswordCost = 12

// CheckPassword returns why pw cannot be a password, or nil.
func CheckPassword(pw string) error {
	switch n := len(pw); {
	case n < MinPasswordLen:
		return fmt.Errorf("%d bytes; want at least %d", n, MinPasswordLen)
	case n > MaxPasswordLen:
		return fmt.Errorf("%d bytes; want at most %d (bcrypt reads no further)", n, MaxPasswordLen)
	}
	return nil
}

// HashPassword returns pw's bcrypt hash at cost (0: DefaultPasswordCost),
// after CheckPassword.
func HashPassword(pw string, cost int) ([]byte, error) {
	if err := CheckPassword(pw); err != nil {
		return nil, fmt.Errorf("password: %w", err)
	}
	if cost == 0 {
		cost = DefaultPasswordCost
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	return h, nil
}

// Passwords checks logins against the store's accounts. A login with an
// unknown name is compared against a dummy hash at the cost of the
// newest active account's hash, so that it takes as long as one with a
// known name whatever cost refundctl hashed with: neither the answer nor
// its time tells whether a name exists. The dummies are made once per
// cost (Warm makes the current one ahead of the first login).
type Passwords struct {
	mu      sync.Mutex
	dummies map[int][]byte
}

// NewPasswords returns a login checker with no dummy made yet.
func NewPasswords() *Passwords { return &Passwords{dummies: map[int][]byte{}} }

// Warm makes the dummy hash an unknown name would be compared against now,
// so that the first such login costs no more than others.
func (p *Passwords) Warm(ctx context.Context, s *Store) error {
	cost, err := s.passwordCost(ctx)
	if err != nil {
		return err
	}
	_, err = p.dummy(cost)
	return err
}

func (p *Passwords) dummy(cost int) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if d, ok := p.dummies[cost]; ok {
		return d, nil
	}
	pw, err := NewPassword()
	if err != nil {
		return nil, err
	}
	d, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		return nil, fmt.Errorf("dummy password hash: %w", err)
	}
	p.dummies[cost] = d
	return d, nil
}

// Login returns the active account called name if pw is its password,
// and ErrWrongPassword otherwise: for an unknown name and for a disabled
// account too, each after one bcrypt comparison at the accounts' cost.
// Other errors are the store's.
func (p *Passwords) Login(ctx context.Context, s *Store, name, pw string) (Account, error) {
	a, err := s.AccountByName(ctx, name)
	hash := a.passwordHash
	switch {
	case errors.Is(err, ErrNotFound):
		cost, cerr := s.passwordCost(ctx)
		if cerr != nil {
			return Account{}, cerr
		}
		if hash, cerr = p.dummy(cost); cerr != nil {
			return Account{}, cerr
		}
	case err != nil:
		return Account{}, err
	}
	match := bcrypt.CompareHashAndPassword(hash, []byte(pw)) == nil
	if err != nil || !match || a.Disabled() {
		return Account{}, ErrWrongPassword
	}
	return a, nil
}

// passwordCost is the bcrypt cost of the newest active account's hash,
// DefaultPasswordCost without one.
func (s *Store) passwordCost(ctx context.Context) (int, error) {
	var h string
	err := sqlx.GetContext(ctx, s.r, &h, `SELECT password_hash FROM console_accounts WHERE disabled_at IS NULL ORDER BY id DESC LIMIT 1`)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return DefaultPasswordCost, nil
	case err != nil:
		return 0, fmt.Errorf("password cost: %w", err)
	}
	cost, err := bcrypt.Cost([]byte(h))
	if err != nil {
		return DefaultPasswordCost, nil //nolint:nilerr // a damaged row: compare at the default cost
	}
	return cost, nil
}

// NewPassword returns a generated password: 24 characters from 18 random
// bytes (144 bits), URL-safe so that it pastes anywhere.
func NewPassword() (string, error) {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// TokenPrefix starts every API token, so that one pasted in the wrong
// place (a log, a chat) is recognisable as a refundhub console token.
const TokenPrefix = "rhc_"

// NewToken returns a new API token: TokenPrefix and 32 random bytes,
// base64url.
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// HashToken is how a token is kept and looked up: its SHA-256, hex. A
// token has 256 random bits, so a fast hash is enough: no one can search
// that space, and the console can afford one on every request.
func HashToken(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// NewAccount is an account to add.
type NewAccount struct {
	Name         string
	Role         Role
	PasswordHash []byte // Passwords.Hash
	By           string // who adds it
}

// AddAccount adds an account. It returns ErrAccountExists when the name is
// taken (by a disabled account too).
func (tx *Tx) AddAccount(ctx context.Context, a NewAccount) error {
	if err := CheckAccountName(a.Name); err != nil {
		return fmt.Errorf("add account: name: %s", err)
	}
	if !a.Role.Valid() {
		return fmt.Errorf("add account %s: role %q: want viewer or operator", a.Name, a.Role)
	}
	if _, err := bcrypt.Cost(a.PasswordHash); err != nil {
		return fmt.Errorf("add account %s: not a bcrypt password hash", a.Name)
	}
	// ON CONFLICT rather than a failed statement, which would end a
	// PostgreSQL transaction.
	_, inserted, err := tx.insert(ctx, `INSERT INTO console_accounts (name, role, password_hash, created_at, created_by)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, a.Name, string(a.Role), string(a.PasswordHash), ms64(tx.now), a.By)
	switch {
	case err == nil && !inserted, isUnique(err):
		return fmt.Errorf("add account %s: %w", a.Name, ErrAccountExists)
	case err != nil:
		return fmt.Errorf("add account %s: %w", a.Name, err)
	}
	return nil
}

type accountRow struct {
	ID           int64         `db:"id"`
	Name         string        `db:"name"`
	Role         string        `db:"role"`
	PasswordHash string        `db:"password_hash"`
	CreatedAt    int64         `db:"created_at"`
	CreatedBy    string        `db:"created_by"`
	DisabledAt   sql.NullInt64 `db:"disabled_at"`
	DisabledBy   string        `db:"disabled_by"`
	DisableNote  string        `db:"disable_note"`
	Tokens       int           `db:"tokens"`
}

const accountColumns = `a.id, a.name, a.role, a.password_hash, a.created_at, a.created_by, a.disabled_at, a.disabled_by, a.disable_note`

func (r accountRow) account() Account {
	return Account{Name: r.Name, Role: Role(r.Role), CreatedAt: time.UnixMilli(r.CreatedAt).UTC(), CreatedBy: r.CreatedBy,
		DisabledAt: fromMS(r.DisabledAt), DisabledBy: r.DisabledBy, DisableNote: r.DisableNote, Tokens: r.Tokens,
		id: r.ID, passwordHash: []byte(r.PasswordHash)}
}

// Accounts lists every account, disabled ones too, by name, each with the
// number of its tokens not revoked.
func (s *Store) Accounts(ctx context.Context) ([]Account, error) {
	var rows []accountRow
	err := sqlx.SelectContext(ctx, s.r, &rows, `SELECT `+accountColumns+`,
		(SELECT COUNT(*) FROM console_tokens t WHERE t.account_id = a.id AND t.revoked_at IS NULL) AS tokens
		FROM console_accounts a ORDER BY a.name`)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	out := make([]Account, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.account())
	}
	return out, nil
}

// AccountByName returns the account called name, disabled or not, or
// ErrNotFound. The console reads it on every request of a session, so
// that a disabled account or a changed role ends the session at once.
func (s *Store) AccountByName(ctx context.Context, name string) (Account, error) {
	return accountByName(ctx, s.r, name)
}

func accountByName(ctx context.Context, q sqlx.QueryerContext, name string) (Account, error) {
	var r accountRow
	if err := sqlx.GetContext(ctx, q, &r, `SELECT `+accountColumns+`, 0 AS tokens FROM console_accounts a WHERE a.name = ?`, name); err != nil {
		return Account{}, fmt.Errorf("account %s: %w", name, notFound(err))
	}
	return r.account(), nil
}

// DisableAccount disables the account called name, recording who and why;
// its sessions and tokens stop working at the console's next request. It
// returns ErrNotFound for an unknown name and ErrAccountDisabled for one
// disabled already (the first record stands), each changing nothing.
func (tx *Tx) DisableAccount(ctx context.Context, name, by, note string) error {
	a, err := accountByName(ctx, tx.tx, name)
	if err != nil {
		return fmt.Errorf("disable %w", err)
	}
	if a.Disabled() {
		return fmt.Errorf("disable account %s: %w", name, ErrAccountDisabled)
	}
	// Conditional: a disable committed since the read (another process,
	// on PostgreSQL) stands.
	res, err := tx.tx.ExecContext(ctx, `UPDATE console_accounts SET disabled_at = ?, disabled_by = ?, disable_note = ?
		WHERE id = ? AND disabled_at IS NULL`, ms64(tx.now), by, note, a.id)
	if err != nil {
		return fmt.Errorf("disable account %s: %w", name, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("disable account %s: %w", name, cmp.Or(err, ErrAccountDisabled))
	}
	return nil
}

// NewAPIToken is a token to add.
type NewAPIToken struct {
	Account string // the holder's name
	Label   string // what it is for ("laptop", "prometheus")
	Hash    string // HashToken of the token
	By      string // who adds it
}

// AddToken records a token for an active account and returns its record.
// It returns ErrNotFound for an unknown account and ErrAccountDisabled for
// a disabled one.
func (tx *Tx) AddToken(ctx context.Context, t NewAPIToken) (APIToken, error) {
	if _, err := hex.DecodeString(t.Hash); err != nil || len(t.Hash) != 2*sha256.Size {
		return APIToken{}, errors.New("add token: the hash is not a SHA-256 in hex (HashToken)")
	}
	a, err := accountByName(ctx, tx.tx, t.Account)
	if err != nil {
		return APIToken{}, fmt.Errorf("add token: %w", err)
	}
	if a.Disabled() {
		return APIToken{}, fmt.Errorf("add token: account %s: %w", t.Account, ErrAccountDisabled)
	}
	id, _, err := tx.insert(ctx, `INSERT INTO console_tokens (account_id, label, token_sha256, created_at, created_by)
		VALUES (?, ?, ?, ?, ?)`, a.id, t.Label, strings.ToLower(t.Hash), ms64(tx.now), t.By)
	if err != nil {
		return APIToken{}, fmt.Errorf("add token for %s: %w", t.Account, err)
	}
	return APIToken{ID: id, Account: t.Account, Label: t.Label, CreatedAt: tx.now.UTC().Truncate(time.Millisecond), CreatedBy: t.By}, nil
}

type tokenRow struct {
	ID         int64         `db:"id"`
	Account    string        `db:"account"`
	Label      string        `db:"label"`
	CreatedAt  int64         `db:"created_at"`
	CreatedBy  string        `db:"created_by"`
	RevokedAt  sql.NullInt64 `db:"revoked_at"`
	RevokedBy  string        `db:"revoked_by"`
	RevokeNote string        `db:"revoke_note"`
}

const tokenColumns = `t.id, a.name AS account, t.label, t.created_at, t.created_by, t.revoked_at, t.revoked_by, t.revoke_note`

func (r tokenRow) token() APIToken {
	return APIToken{ID: r.ID, Account: r.Account, Label: r.Label, CreatedAt: time.UnixMilli(r.CreatedAt).UTC(), CreatedBy: r.CreatedBy,
		RevokedAt: fromMS(r.RevokedAt), RevokedBy: r.RevokedBy, RevokeNote: r.RevokeNote}
}

// Tokens lists the tokens of account (every account's when empty), revoked
// ones too, in id order. An unknown account has none.
func (s *Store) Tokens(ctx context.Context, account string) ([]APIToken, error) {
	q := `SELECT ` + tokenColumns + ` FROM console_tokens t JOIN console_accounts a ON a.id = t.account_id`
	var args []any
	if account != "" {
		q += ` WHERE a.name = ?`
		args = append(args, account)
	}
	var rows []tokenRow
	if err := sqlx.SelectContext(ctx, s.r, &rows, q+` ORDER BY t.id`, args...); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	out := make([]APIToken, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.token())
	}
	return out, nil
}

// Token returns token id's record, or ErrNotFound.
func (s *Store) Token(ctx context.Context, id int64) (APIToken, error) {
	return tokenByID(ctx, s.r, id)
}

func tokenByID(ctx context.Context, q sqlx.QueryerContext, id int64) (APIToken, error) {
	var r tokenRow
	if err := sqlx.GetContext(ctx, q, &r, `SELECT `+tokenColumns+` FROM console_tokens t
		JOIN console_accounts a ON a.id = t.account_id WHERE t.id = ?`, id); err != nil {
		return APIToken{}, fmt.Errorf("token %d: %w", id, notFound(err))
	}
	return r.token(), nil
}

// RevokeToken revokes token id, recording who and why; the console refuses
// it from its next request. It returns ErrNotFound for an unknown id and
// ErrTokenRevoked for one revoked already (the first record stands), each
// changing nothing.
func (tx *Tx) RevokeToken(ctx context.Context, id int64, by, note string) error {
	t, err := tokenByID(ctx, tx.tx, id)
	if err != nil {
		return fmt.Errorf("revoke %w", err)
	}
	if t.Revoked() {
		return fmt.Errorf("revoke token %d: %w", id, ErrTokenRevoked)
	}
	// Conditional, as DisableAccount's.
	res, err := tx.tx.ExecContext(ctx, `UPDATE console_tokens SET revoked_at = ?, revoked_by = ?, revoke_note = ?
		WHERE id = ? AND revoked_at IS NULL`, ms64(tx.now), by, note, id)
	if err != nil {
		return fmt.Errorf("revoke token %d: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("revoke token %d: %w", id, cmp.Or(err, ErrTokenRevoked))
	}
	return nil
}

// AccountByToken returns the holder of tok, and tok's record, when tok is
// a token that is not revoked and its account is active; ErrNotFound
// otherwise (an unknown, revoked or disabled one alike: the caller has
// nothing to tell the client). It looks the token up by its hash.
func (s *Store) AccountByToken(ctx context.Context, tok string) (Account, APIToken, error) {
	var r struct {
		accountRow
		TokenID    int64  `db:"token_id"`
		TokenLabel string `db:"token_label"`
	}
	err := sqlx.GetContext(ctx, s.r, &r, `SELECT `+accountColumns+`, 0 AS tokens, t.id AS token_id, t.label AS token_label
		FROM console_tokens t JOIN console_accounts a ON a.id = t.account_id
		WHERE t.token_sha256 = ? AND t.revoked_at IS NULL AND a.disabled_at IS NULL`, HashToken(tok))
	if err != nil {
		return Account{}, APIToken{}, fmt.Errorf("account by token: %w", notFound(err))
	}
	a := r.account()
	return a, APIToken{ID: r.TokenID, Account: a.Name, Label: r.TokenLabel}, nil
}
