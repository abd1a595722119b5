package casework

import "encoding/json"

// msgAttrs name a message in the worker's log lines, under the keys
// docs/operations.md lists: source, msg_id (its Nats-Msg-Id) and, for an
// operator command, command (the command's id, the one refundctl printed).
// Lines about a case add "case" (its id) themselves.
func msgAttrs(source, msgID string, payload []byte) []any {
	if source != sourceCommands {
		return []any{"source", source, "msg_id", msgID}
	}
	id, _ := commandOf(payload, msgID)
	return []any{"source", source, "msg_id", msgID, "command", id}
}

// commandOf is the id and case of the operator command in payload. The id
// is the payload's own (a retried dead letter is republished under another
// Nats-Msg-Id); a payload that does not decode falls back to msgID, with no
// case.
func commandOf(payload []byte, msgID string) (id string, caseID int64) {
	var c struct {
		ID     string `json:"id"`
		CaseID int64  `json:"caseId"`
	}
	if json.Unmarshal(payload, &c) != nil || c.ID == "" {
		return msgID, 0
	}
	return c.ID, max(c.CaseID, 0)
}
