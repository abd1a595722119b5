package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/refundhub/refundhub/internal/casestore"
)

// messageJSON is one message of a case's conversation in --json output.
type messageJSON struct {
	MessageID string `json:"messageId"`
	Author    string `json:"author"`
	Content   string `json:"content"`
	Images    string `json:"images,omitempty"`
	SentAt    string `json:"sentAt,omitempty"`
}

// messagesCommand shows a case's conversation with the seller, as the
// worker last read it from the platform, and marks the seller's new
// messages read (the worker counts them, so the case stands out until then).
func (a *app) messagesCommand() *cobra.Command {
	var keepUnread bool
	cmd := &cobra.Command{
		Use:   "messages CASE",
		Short: "Show a case's conversation with the seller and mark it read",
		Long: "messages prints the refund's messages (seller, buyer and platform) oldest first, as the\n" +
			"worker last read them from the platform (Taobao; it reads them when the case wakes or a\n" +
			"callback comes, at most every WORKER_MESSAGES_INTERVAL). New seller messages count as\n" +
			"unread on the case (list and show say so) until this command prints them; --keep-unread\n" +
			"leaves them so. Reply with refundctl message N --text ….",
		Example: "  refundctl messages 12\n  refundctl messages 12 --json --keep-unread",
		Args:    cobra.ExactArgs(1),
	}
	cmd.Flags().BoolVar(&keepUnread, "keep-unread", false, "do not mark the seller's messages read")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		id, err := parseID("case id", args[0])
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		open := a.openStoreForWrite
		if keepUnread {
			open = a.openStore
		}
		st, err := open(ctx)
		if err != nil {
			return err
		}
		defer st.Close()
		c, err := st.GetCase(ctx, id)
		if errors.Is(err, casestore.ErrNotFound) {
			return fmt.Errorf("case %d: no such case (refundctl list shows the cases)", id)
		}
		if err != nil {
			return err
		}
		msgs, err := st.CaseMessages(ctx, id)
		if err != nil {
			return err
		}
		if !keepUnread && c.UnreadSellerMessages > 0 {
			if err := st.Update(ctx, func(tx *casestore.Tx) error {
				_, err := tx.MarkMessagesRead(ctx, id)
				return err
			}); err != nil {
				return err
			}
		}
		if a.cfg.JSON {
			out := make([]messageJSON, len(msgs))
			for i, m := range msgs {
				out[i] = messageJSON{MessageID: m.MessageID, Author: m.Author, Content: m.Content, Images: m.Images}
				if !m.SentAt.IsZero() {
					out[i].SentAt = m.SentAt.Format("2006-01-02T15:04:05Z07:00")
				}
			}
			return writeJSON(a.stdout, out)
		}
		if len(msgs) == 0 {
			checked := "never read yet"
			if !c.MessagesCheckedAt.IsZero() {
				checked = "last read " + timeHuman(c.MessagesCheckedAt)
			}
			_, err := fmt.Fprintf(a.stdout, "no messages on case %d (%s)\n", id, checked)
			return err
		}
		for _, m := range msgs {
			at := "-"
			if !m.SentAt.IsZero() {
				at = timeHuman(m.SentAt)
			}
			fmt.Fprintf(a.stdout, "%s  %s: %s\n", at, m.Author, m.Content)
			if m.Images != "" {
				fmt.Fprintf(a.stdout, "    images: %s\n", m.Images)
			}
		}
		if c.UnreadSellerMessages > 0 && !keepUnread {
			_, err = fmt.Fprintf(a.stdout, "(%d new from the seller, now marked read)\n", c.UnreadSellerMessages)
		}
		return err
	})
	return cmd
}
