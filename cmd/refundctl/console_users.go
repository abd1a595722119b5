package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/deadletters"
)

// maxAccountNote bounds the note of a disable or a revoke: a sentence or
// two for the record, as long as a dead letter's discard note.
const maxAccountNote = deadletters.MaxNote

// The console's accounts and API tokens live in the case store; refundctl
// writes them (openStoreForWrite) on the host that holds the file, and the
// console reads them on every request, so a change takes effect at once.

func (a *app) consoleCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "console",
		Short: "Manage the operator console's accounts (users) and API tokens",
		Long: "The console's accounts and API tokens live in the case store (DB_PATH). An account has\n" +
			"a name, a role (viewer reads; operator also acts) and a password (bcrypt); it logs in on\n" +
			"the console's login page. An API token (Authorization: Bearer) acts as its account on any\n" +
			"route. Only hashes are stored: a password or token is printed once, when it is made.\n" +
			"Disabling an account or revoking a token takes effect at the console's next request.",
		Args: cobra.NoArgs,
	}
	users := &cobra.Command{Use: "users", Short: "Add, list and disable console accounts", Args: cobra.NoArgs}
	users.AddCommand(a.consoleUsersAdd(), a.consoleUsersList(), a.consoleUsersDisable())
	tokens := &cobra.Command{Use: "tokens", Short: "Add, list and revoke console API tokens", Args: cobra.NoArgs}
	tokens.AddCommand(a.consoleTokensAdd(), a.consoleTokensList(), a.consoleTokensRevoke())
	cmd.AddCommand(users, tokens)
	return cmd
}

// maxLabel bounds a token's label: a word or two saying where it is used.
const maxLabel = 100

// accountJSON is the stable JSON form of an account; it never holds the
// password or its hash. Password is set only by users add, when it
// generated one.
type accountJSON struct {
	Name        string `json:"name"`
	Role        string `json:"role"`
	CreatedAt   string `json:"createdAt"`
	CreatedBy   string `json:"createdBy,omitempty"`
	DisabledAt  string `json:"disabledAt,omitempty"`
	DisabledBy  string `json:"disabledBy,omitempty"`
	DisableNote string `json:"disableNote,omitempty"`
	Tokens      int    `json:"tokens"`
	Password    string `json:"password,omitempty"`
}

func toAccountJSON(ac casestore.Account) accountJSON {
	return accountJSON{Name: ac.Name, Role: string(ac.Role), CreatedAt: timeJSON(ac.CreatedAt), CreatedBy: ac.CreatedBy,
		DisabledAt: timeJSON(ac.DisabledAt), DisabledBy: ac.DisabledBy, DisableNote: ac.DisableNote, Tokens: ac.Tokens}
}

// tokenJSON is the stable JSON form of a token's record. Token is set
// only by tokens add: the token itself, shown once.
type tokenJSON struct {
	ID         int64  `json:"id"`
	User       string `json:"user"`
	Label      string `json:"label"`
	CreatedAt  string `json:"createdAt"`
	CreatedBy  string `json:"createdBy,omitempty"`
	RevokedAt  string `json:"revokedAt,omitempty"`
	RevokedBy  string `json:"revokedBy,omitempty"`
	RevokeNote string `json:"revokeNote,omitempty"`
	Token      string `json:"token,omitempty"`
}

func toTokenJSON(t casestore.APIToken) tokenJSON {
	return tokenJSON{ID: t.ID, User: t.Account, Label: t.Label, CreatedAt: timeJSON(t.CreatedAt), CreatedBy: t.CreatedBy,
		RevokedAt: timeJSON(t.RevokedAt), RevokedBy: t.RevokedBy, RevokeNote: t.RevokeNote}
}

// checkName is the usage error for a NAME argument that no account can
// have.
func checkName(what, name string) error {
	if err := casestore.CheckAccountName(name); err != nil {
		return usagef("%s %q: %s", what, cell(name, 70), err)
	}
	return nil
}

// checkNote is the usage error for a --note that is empty or too long.
func checkNote(note, why string) (string, error) {
	note = strings.TrimSpace(note)
	if note == "" {
		return "", usagef("--note: say why %s (it is kept with the record)", why)
	}
	if n := utf8.RuneCountInString(note); n > maxAccountNote {
		return "", usagef("--note: %d characters; want 1 to %d", n, maxAccountNote)
	}
	return note, nil
}

// readPassword reads a password from the first line of r, without its
// line ending; the rules are casestore.CheckPassword's. Errors name the
// flag and never quote what was read.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("--password-stdin: read stdin: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if err := casestore.CheckPassword(pw); err != nil {
		return "", usagef("--password-stdin: the password on stdin has %s", err)
	}
	return pw, nil
}

func (a *app) consoleUsersAdd() *cobra.Command {
	var role string
	var fromStdin bool
	var cost int
	cmd := &cobra.Command{
		Use:   "add NAME --role viewer|operator [--password-stdin]",
		Short: "Add a console account; without --password-stdin, generate its password and print it once",
		Long: "Adds an account to the case store. NAME is 1 to 64 of A-Z a-z 0-9 _ . @ - and goes on the\n" +
			"timeline as the operator of what the account does. Without --password-stdin a strong\n" +
			fmt.Sprintf("password is generated and printed once; with it, the first line of stdin is the password\n"+
				"(%d to %d bytes). Only its bcrypt hash is stored. A name already taken, by an active or a\n", casestore.MinPasswordLen, casestore.MaxPasswordLen) +
			"disabled account (names are never reused), is refused (exit 4) and nothing changes.",
		Example: "  refundctl console users add olga --role operator\n" +
			"  printf %s \"$PASSWORD\" | refundctl console users add vic --role viewer --password-stdin",
		Args: cobra.ExactArgs(1),
	}
	cmd.Flags().StringVar(&role, "role", "", "viewer (reads) or operator (also acts) (required)")
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from the first line of stdin instead of generating one")
	// Tests hash at bcrypt's lowest cost: at the production cost a hash
	// takes seconds under the race detector. Hidden: an operator has no
	// reason to weaken it.
	cmd.Flags().IntVar(&cost, "bcrypt-cost", casestore.DefaultPasswordCost, "bcrypt cost of the password hash")
	_ = cmd.Flags().MarkHidden("bcrypt-cost")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		name := args[0]
		if err := checkName("NAME", name); err != nil {
			return err
		}
		r := casestore.Role(role)
		switch {
		case role == "":
			return usagef("--role: required (viewer or operator)")
		case !r.Valid():
			return usagef("--role %q: want viewer or operator", cell(role, 40))
		}
		password, generated := "", false
		if fromStdin {
			var err error
			if password, err = readPassword(cmd.InOrStdin()); err != nil {
				return err
			}
		} else {
			var err error
			if password, err = casestore.NewPassword(); err != nil {
				return err
			}
			generated = true
		}
		if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
			return usagef("--bcrypt-cost %d: want %d to %d", cost, bcrypt.MinCost, bcrypt.MaxCost)
		}
		return a.addAccount(cmd.Context(), newAccount{name: name, role: r, password: password, generated: generated, cost: cost})
	})
	return cmd
}

// newAccount is what users add was asked for.
type newAccount struct {
	name      string
	role      casestore.Role
	password  string
	generated bool // printed once, since nobody else knows it
	cost      int  // bcrypt
}

// addAccount stores the account with its password's hash and reports it,
// with the password when it was generated.
func (a *app) addAccount(ctx context.Context, n newAccount) error {
	name := n.name
	st, err := a.openStoreForWrite(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	refuse := func() error {
		return refusedf("account %s exists already (disabled accounts keep their names: names are never reused); nothing changed", name)
	}
	// Checked before the slow hash; the insert checks again.
	if _, err := st.AccountByName(ctx, name); err == nil {
		return refuse()
	} else if !errors.Is(err, casestore.ErrNotFound) {
		return err
	}
	hash, err := casestore.HashPassword(n.password, n.cost)
	if err != nil {
		return err
	}
	err = st.Update(ctx, func(tx *casestore.Tx) error {
		return tx.AddAccount(ctx, casestore.NewAccount{Name: name, Role: n.role, PasswordHash: hash, By: a.cfg.Operator})
	})
	if errors.Is(err, casestore.ErrAccountExists) {
		return refuse()
	}
	if err != nil {
		return err
	}
	ac, err := st.AccountByName(ctx, name)
	if err != nil {
		return fmt.Errorf("account %s added; reading it back: %w", name, err)
	}
	if a.cfg.JSON {
		out := toAccountJSON(ac)
		if n.generated {
			out.Password = n.password
		}
		return writeJSON(a.stdout, out)
	}
	fmt.Fprintf(a.stdout, "added %s account %s\n", ac.Role, ac.Name)
	if n.generated {
		fmt.Fprintf(a.stdout, "password: %s\n", n.password)
		fmt.Fprintln(a.stdout, "It is shown this once (only its hash is stored): give it to the account's holder.")
	}
	return nil
}

func (a *app) consoleUsersList() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List console accounts, disabled ones too (never a password or hash)",
		Args:  cobra.NoArgs,
	}
	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		st, err := a.openStore(ctx)
		if err != nil {
			return err
		}
		defer st.Close()
		accounts, err := st.Accounts(ctx)
		if err != nil {
			return err
		}
		if a.cfg.JSON {
			out := make([]accountJSON, 0, len(accounts))
			for _, ac := range accounts {
				out = append(out, toAccountJSON(ac))
			}
			return writeJSON(a.stdout, out)
		}
		if len(accounts) == 0 {
			_, err := fmt.Fprintln(a.stdout, "no console accounts (add one with: refundctl console users add NAME --role operator)")
			return err
		}
		tw := newTable(a.stdout)
		fmt.Fprintln(tw, "NAME\tROLE\tSTATE\tTOKENS\tCREATED\tBY")
		for _, ac := range accounts {
			state := "active"
			if ac.Disabled() {
				state = "disabled " + timeHuman(ac.DisabledAt) + " by " + cell(ac.DisabledBy, 32) + ": " + cell(ac.DisableNote, 60)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", cell(ac.Name, 64), ac.Role, state, ac.Tokens, timeHuman(ac.CreatedAt), cell(ac.CreatedBy, 32))
		}
		return tw.Flush()
	})
	return cmd
}

func (a *app) consoleUsersDisable() *cobra.Command {
	var note string
	cmd := &cobra.Command{
		Use:   "disable NAME --note TEXT",
		Short: "Disable a console account: its sessions and tokens stop working at once",
		Long: "Marks the account disabled, with the operator (--operator, REFUNDCTL_OPERATOR, else USER),\n" +
			"the time and --note. The console refuses its sessions, logins and API tokens from its next\n" +
			"request. The account stays listed and its name is never reused. An account already\n" +
			"disabled is refused (exit 4) and left as it is.",
		Example: "  refundctl console users disable olga --note 'left the team'",
		Args:    cobra.ExactArgs(1),
	}
	cmd.Flags().StringVar(&note, "note", "", fmt.Sprintf("why it is disabled (required, 1 to %d characters)", maxAccountNote))
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		name := args[0]
		if err := checkName("NAME", name); err != nil {
			return err
		}
		note, err := checkNote(note, "the account is disabled")
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		st, err := a.openStoreForWrite(ctx)
		if err != nil {
			return err
		}
		defer st.Close()
		err = st.Update(ctx, func(tx *casestore.Tx) error { return tx.DisableAccount(ctx, name, a.cfg.Operator, note) })
		switch {
		case errors.Is(err, casestore.ErrNotFound):
			return fmt.Errorf("no console account %s in %s (refundctl console users list)", name, casestore.Redact(a.cfg.DBPath))
		case errors.Is(err, casestore.ErrAccountDisabled):
			if ac, lerr := st.AccountByName(ctx, name); lerr == nil {
				return refusedf("account %s was already disabled at %s by %s (%s); nothing changed", name,
					timeHuman(ac.DisabledAt), cell(ac.DisabledBy, 64), cell(ac.DisableNote, 120))
			}
			return refusedf("account %s was already disabled; nothing changed", name)
		case err != nil:
			return err
		}
		ac, err := st.AccountByName(ctx, name)
		if err != nil {
			return fmt.Errorf("account %s disabled; reading it back: %w", name, err)
		}
		if a.cfg.JSON {
			return writeJSON(a.stdout, toAccountJSON(ac))
		}
		_, err = fmt.Fprintf(a.stdout, "disabled account %s at %s by %s: %s (its sessions and tokens no longer work)\n", ac.Name,
			timeHuman(ac.DisabledAt), cell(ac.DisabledBy, 64), cell(ac.DisableNote, maxAccountNote))
		return err
	})
	return cmd
}

func (a *app) consoleTokensAdd() *cobra.Command {
	var user, label string
	cmd := &cobra.Command{
		Use:   "add --user NAME --label TEXT",
		Short: "Make an API token for an account and print it once",
		Long: "Makes a random token (256 bits), stores its SHA-256 for the account --user and prints the\n" +
			"token once: programs (refundctl over the API, Prometheus, scripts) send it as\n" +
			"Authorization: Bearer <token> and act as the account, with its role. A disabled account\n" +
			"gets no token (exit 4).",
		Example: "  refundctl console tokens add --user olga --label laptop",
		Args:    cobra.NoArgs,
	}
	cmd.Flags().StringVar(&user, "user", "", "the account the token acts as (required)")
	cmd.Flags().StringVar(&label, "label", "", fmt.Sprintf("what the token is for, e.g. laptop or prometheus (required, 1 to %d characters)", maxLabel))
	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		if user == "" {
			return usagef("--user: required (the account the token acts as)")
		}
		if err := checkName("--user", user); err != nil {
			return err
		}
		label = strings.TrimSpace(label)
		switch n := utf8.RuneCountInString(label); {
		case n == 0:
			return usagef("--label: required: say what the token is for (laptop, prometheus)")
		case n > maxLabel:
			return usagef("--label: %d characters; want 1 to %d", n, maxLabel)
		}
		return a.addToken(cmd.Context(), user, label)
	})
	return cmd
}

// addToken makes a token for user, stores its hash and prints it once.
func (a *app) addToken(ctx context.Context, user, label string) error {
	st, err := a.openStoreForWrite(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	tok, err := casestore.NewToken()
	if err != nil {
		return err
	}
	var rec casestore.APIToken
	err = st.Update(ctx, func(tx *casestore.Tx) error {
		var err error
		rec, err = tx.AddToken(ctx, casestore.NewAPIToken{Account: user, Label: label, Hash: casestore.HashToken(tok), By: a.cfg.Operator})
		return err
	})
	switch {
	case errors.Is(err, casestore.ErrNotFound):
		return fmt.Errorf("--user %s: no such console account in %s (refundctl console users list)", user, casestore.Redact(a.cfg.DBPath))
	case errors.Is(err, casestore.ErrAccountDisabled):
		return refusedf("--user %s: the account is disabled and gets no token; nothing changed", user)
	case err != nil:
		return err
	}
	if a.cfg.JSON {
		out := toTokenJSON(rec)
		out.Token = tok
		return writeJSON(a.stdout, out)
	}
	fmt.Fprintf(a.stdout, "token %d for %s (%s):\n%s\n", rec.ID, rec.Account, cell(rec.Label, maxLabel), tok)
	fmt.Fprintln(a.stdout, "It is shown this once (only its SHA-256 is stored). Send it as the header")
	fmt.Fprintln(a.stdout, "  Authorization: Bearer <token>")
	fmt.Fprintf(a.stdout, "to the console (e.g. curl -H \"Authorization: Bearer $TOKEN\" http://CONSOLE_ADDR/api/v1/cases).\nRevoke it with: refundctl console tokens revoke %d --note TEXT\n", rec.ID)
	return nil
}

func (a *app) consoleTokensList() *cobra.Command {
	var user string
	cmd := &cobra.Command{
		Use:   "list [--user NAME]",
		Short: "List API tokens (their records; never a token or hash), revoked ones too",
		Args:  cobra.NoArgs,
	}
	cmd.Flags().StringVar(&user, "user", "", "only this account's tokens")
	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		if user != "" {
			if err := checkName("--user", user); err != nil {
				return err
			}
		}
		ctx := cmd.Context()
		st, err := a.openStore(ctx)
		if err != nil {
			return err
		}
		defer st.Close()
		if user != "" {
			if _, err := st.AccountByName(ctx, user); errors.Is(err, casestore.ErrNotFound) {
				return fmt.Errorf("--user %s: no such console account in %s (refundctl console users list)", user, casestore.Redact(a.cfg.DBPath))
			} else if err != nil {
				return err
			}
		}
		tokens, err := st.Tokens(ctx, user)
		if err != nil {
			return err
		}
		if a.cfg.JSON {
			out := make([]tokenJSON, 0, len(tokens))
			for _, t := range tokens {
				out = append(out, toTokenJSON(t))
			}
			return writeJSON(a.stdout, out)
		}
		if len(tokens) == 0 {
			_, err := fmt.Fprintln(a.stdout, "no API tokens (add one with: refundctl console tokens add --user NAME --label TEXT)")
			return err
		}
		tw := newTable(a.stdout)
		fmt.Fprintln(tw, "ID\tUSER\tLABEL\tSTATE\tCREATED\tBY")
		for _, t := range tokens {
			state := "valid"
			if t.Revoked() {
				state = "revoked " + timeHuman(t.RevokedAt) + " by " + cell(t.RevokedBy, 32) + ": " + cell(t.RevokeNote, 60)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", t.ID, cell(t.Account, 64), cell(t.Label, 40), state, timeHuman(t.CreatedAt), cell(t.CreatedBy, 32))
		}
		return tw.Flush()
	})
	return cmd
}

func (a *app) consoleTokensRevoke() *cobra.Command {
	var note string
	cmd := &cobra.Command{
		Use:   "revoke ID --note TEXT",
		Short: "Revoke an API token: the console refuses it from its next request",
		Long: "Marks the token revoked, with the operator (--operator, REFUNDCTL_OPERATOR, else USER), the\n" +
			"time and --note. The record stays listed. A token already revoked is refused (exit 4) and\n" +
			"left as it is.",
		Example: "  refundctl console tokens revoke 3 --note 'laptop lost'",
		Args:    cobra.ExactArgs(1),
	}
	cmd.Flags().StringVar(&note, "note", "", fmt.Sprintf("why it is revoked (required, 1 to %d characters)", maxAccountNote))
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		id, err := parseID("token id", args[0])
		if err != nil {
			return err
		}
		note, err := checkNote(note, "the token is revoked")
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		st, err := a.openStoreForWrite(ctx)
		if err != nil {
			return err
		}
		defer st.Close()
		err = st.Update(ctx, func(tx *casestore.Tx) error { return tx.RevokeToken(ctx, id, a.cfg.Operator, note) })
		switch {
		case errors.Is(err, casestore.ErrNotFound):
			return fmt.Errorf("token %d not found (refundctl console tokens list)", id)
		case errors.Is(err, casestore.ErrTokenRevoked):
			if t, lerr := st.Token(ctx, id); lerr == nil {
				return refusedf("token %d was already revoked at %s by %s (%s); nothing changed", id,
					timeHuman(t.RevokedAt), cell(t.RevokedBy, 64), cell(t.RevokeNote, 120))
			}
			return refusedf("token %d was already revoked; nothing changed", id)
		case err != nil:
			return err
		}
		t, err := st.Token(ctx, id)
		if err != nil {
			return fmt.Errorf("token %d revoked; reading it back: %w", id, err)
		}
		if a.cfg.JSON {
			return writeJSON(a.stdout, toTokenJSON(t))
		}
		_, err = fmt.Fprintf(a.stdout, "revoked token %d of %s (%s) at %s by %s: %s\n", t.ID, t.Account, cell(t.Label, maxLabel),
			timeHuman(t.RevokedAt), cell(t.RevokedBy, 64), cell(t.RevokeNote, maxAccountNote))
		return err
	})
	return cmd
}
