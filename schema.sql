-- Schema of the worker's SQLite store (internal/casestore).
--
-- The file is a list of numbered migrations. Each starts with a line
-- "-- +migration N: description" and runs once, in its own BEGIN IMMEDIATE
-- transaction, together with the row it adds to schema_migrations. A database
-- created by an older build upgrades in place: only the missing migrations run.
-- Never edit a migration that has shipped; append a new one.
--
-- Only the worker migrates (casestore.Open). Older workers and tools keep
-- reading and writing a file a newer build migrated, so a migration only adds
-- tables, columns (with defaults) and indexes, or rebuilds a table with the
-- same columns; it never drops or renames what an older build uses.
--
-- Conventions: times are INTEGER Unix milliseconds (UTC), NULL meaning "never";
-- JSON documents are TEXT; empty strings, not NULL, for absent identifiers.
-- This file is the only copy: the root package refundhub (schema.go) embeds it
-- for internal/casestore.

-- +migration 1: cases, step attempts, timeline, inbox
CREATE TABLE cases (
    id                     INTEGER PRIMARY KEY,
    platform               TEXT    NOT NULL CHECK (platform IN ('taobao', '1688')),
    order_id               TEXT    NOT NULL CHECK (order_id <> ''),
    sub_order_id           TEXT    NOT NULL DEFAULT '',  -- Taobao sub-order; '' for 1688
    refund_id              TEXT    NOT NULL DEFAULT '',  -- platform refund id once known
    state                  TEXT    NOT NULL,             -- refundflow.State
    version                INTEGER NOT NULL DEFAULT 1,   -- optimistic concurrency
    request                TEXT    NOT NULL DEFAULT '{}', -- operator's requested refund (JSON)
    shipment               TEXT    NOT NULL DEFAULT '{}', -- return shipment (JSON)
    platform_status        TEXT    NOT NULL DEFAULT '',  -- refund status last seen on the platform
    last_platform_check_at INTEGER,                      -- last authoritative fetch
    next_wake_at           INTEGER,                      -- timer: deadline or re-check
    attention_code         TEXT    NOT NULL DEFAULT '',
    attention_message      TEXT    NOT NULL DEFAULT '',
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL
);
-- One open case per Taobao sub-order or 1688 order. The state names are
-- refundflow's terminal states (a casestore test keeps them in step).
CREATE UNIQUE INDEX cases_one_open ON cases (platform, order_id, sub_order_id)
    WHERE state NOT IN ('succeeded', 'closed', 'cancelled');
CREATE INDEX cases_refund ON cases (platform, refund_id) WHERE refund_id <> '';
CREATE INDEX cases_wake ON cases (next_wake_at) WHERE next_wake_at IS NOT NULL;
CREATE INDEX cases_state ON cases (state, updated_at);

CREATE TABLE step_attempts (
    id              INTEGER PRIMARY KEY,
    case_id         INTEGER NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    step            TEXT    NOT NULL,
    idempotency_key TEXT UNIQUE,      -- set for side effects; NULL for reads
    status          TEXT    NOT NULL CHECK (status IN ('intent', 'done', 'failed')),
    request         TEXT    NOT NULL DEFAULT '', -- request summary (JSON)
    outcome         TEXT    NOT NULL DEFAULT '', -- response summary (JSON)
    request_id      TEXT    NOT NULL DEFAULT '', -- the platform's requestId
    error_code      TEXT    NOT NULL DEFAULT '',
    error_message   TEXT    NOT NULL DEFAULT '',
    begins          INTEGER NOT NULL DEFAULT 1,  -- times BeginStep saw this key
    started_at      INTEGER NOT NULL,
    finished_at     INTEGER
);
CREATE INDEX step_attempts_case ON step_attempts (case_id, id);
CREATE INDEX step_attempts_intent ON step_attempts (case_id) WHERE status = 'intent';

CREATE TABLE timeline (
    id      INTEGER PRIMARY KEY,
    case_id INTEGER NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    at      INTEGER NOT NULL,
    kind    TEXT    NOT NULL CHECK (kind IN ('callback', 'command', 'decision', 'step', 'timer', 'reconcile', 'note')),
    summary TEXT    NOT NULL,
    detail  TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX timeline_case ON timeline (case_id, id);

-- Consumed messages, kept for days (far beyond JetStream's duplicate window)
-- and pruned by age.
CREATE TABLE inbox (
    msg_id      TEXT PRIMARY KEY,  -- content hash
    stream      TEXT    NOT NULL DEFAULT '',
    stream_seq  INTEGER NOT NULL DEFAULT 0,
    subject     TEXT    NOT NULL DEFAULT '',
    received_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX inbox_received ON inbox (received_at);

-- +migration 2: dead letters; case plan and parked state
ALTER TABLE cases ADD COLUMN plan TEXT NOT NULL DEFAULT '{}';      -- choices made from rendered forms (JSON)
ALTER TABLE cases ADD COLUMN parked_state TEXT NOT NULL DEFAULT ''; -- state a needs_attention case stopped at

CREATE TABLE dead_letters (
    id         INTEGER PRIMARY KEY,
    msg_id     TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    headers    TEXT    NOT NULL DEFAULT '{}', -- JSON object of header lists
    payload    BLOB    NOT NULL,
    reason     TEXT    NOT NULL,              -- max_deliveries, permanent, …
    error      TEXT    NOT NULL DEFAULT '',
    deliveries INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    retried_at INTEGER
);
-- A message is dead at most once until it is retried (a redelivered move is a no-op).
CREATE UNIQUE INDEX dead_letters_pending ON dead_letters (msg_id) WHERE retried_at IS NULL;
CREATE INDEX dead_letters_created ON dead_letters (created_at);

-- +migration 3: case leases (one worker process at a time per case)
-- A worker claims a case in a BEGIN IMMEDIATE transaction before it decides
-- and holds the claim (renewing it) across the platform call, so two worker
-- processes sharing the file never run one case's steps at the same time. A
-- crashed holder's claim expires at lease_until; the next holder finds the
-- open intent, if any, and asks the platform before calling again.
ALTER TABLE cases ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE cases ADD COLUMN lease_until INTEGER NOT NULL DEFAULT 0;
CREATE INDEX cases_taobao_sub_order ON cases (platform, sub_order_id) WHERE sub_order_id <> '';
-- The operator command that opened the case: a redelivered request_refund
-- finds its case here (even a finished one) instead of opening another.
ALTER TABLE cases ADD COLUMN opened_by TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX cases_opened_by ON cases (opened_by) WHERE opened_by <> '';

-- +migration 4: one open case per Taobao sub-order, whatever order id came with it
-- A Taobao case is one per sub-order; cases_one_open includes order_id, so two
-- requests for one sub-order with different order ids (an operator's typo)
-- could open two cases and submit two refunds. Sub-order ids are unique on
-- the platform, so the sub-order alone decides.
CREATE UNIQUE INDEX cases_one_open_sub_order ON cases (platform, sub_order_id)
    WHERE sub_order_id <> '' AND state NOT IN ('succeeded', 'closed', 'cancelled');

-- +migration 5: when a side effect was last attempted
-- A call that timed out on our side may still reach the platform later. The
-- worker trusts a view showing no effect (and sends again under the same
-- key) only once the newest attempt is old enough (refundflow
-- Policy.InFlight), so it records when an attempt under the key last began
-- (BeginStep) or last ended without a result (MarkAttempt), not only when
-- the first began (started_at). Intents open at the upgrade may have been
-- re-sent or cut off by an older build without a record: they count from
-- the upgrade, which costs one wait. NULL on finished older rows.
ALTER TABLE step_attempts ADD COLUMN last_attempt_at INTEGER;
UPDATE step_attempts SET last_attempt_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000 WHERE status = 'intent';

-- +migration 6: the open-case indexes without IN lists
-- SQLite evaluates a partial index's `state NOT IN (...)` with a temporary
-- b-tree (its own page cache, allocated afresh) for the old and the new row
-- of every update that sets state, and for every insert: several times the
-- cost of the write itself. The same predicate as a chain of <> costs
-- nothing. Queries name it the same way (casestore's terminalFilter), so
-- they can still use these indexes.
DROP INDEX cases_one_open;
CREATE UNIQUE INDEX cases_one_open ON cases (platform, order_id, sub_order_id)
    WHERE state <> 'succeeded' AND state <> 'closed' AND state <> 'cancelled';
DROP INDEX cases_one_open_sub_order;
CREATE UNIQUE INDEX cases_one_open_sub_order ON cases (platform, sub_order_id)
    WHERE sub_order_id <> '' AND state <> 'succeeded' AND state <> 'closed' AND state <> 'cancelled';

-- +migration 7: step and timeline CHECKs without IN lists
-- Like the partial indexes of migration 6, a CHECK with an IN list of more
-- than two values builds a temporary b-tree at every insert or update of the
-- row, and every decision writes timeline rows and steps. SQLite cannot
-- change a CHECK in place: both tables are rebuilt with the same columns,
-- rows and indexes (the upgrade copies them once).
CREATE TABLE step_attempts_v7 (
    id              INTEGER PRIMARY KEY,
    case_id         INTEGER NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    step            TEXT    NOT NULL,
    idempotency_key TEXT UNIQUE,      -- set for side effects; NULL for reads
    status          TEXT    NOT NULL CHECK (status = 'intent' OR status = 'done' OR status = 'failed'),
    request         TEXT    NOT NULL DEFAULT '', -- request summary (JSON)
    outcome         TEXT    NOT NULL DEFAULT '', -- response summary (JSON)
    request_id      TEXT    NOT NULL DEFAULT '', -- the platform's requestId
    error_code      TEXT    NOT NULL DEFAULT '',
    error_message   TEXT    NOT NULL DEFAULT '',
    begins          INTEGER NOT NULL DEFAULT 1,  -- times BeginStep saw this key
    started_at      INTEGER NOT NULL,
    finished_at     INTEGER,
    last_attempt_at INTEGER                      -- see migration 5
);
INSERT INTO step_attempts_v7 (id, case_id, step, idempotency_key, status, request, outcome, request_id,
        error_code, error_message, begins, started_at, finished_at, last_attempt_at)
    SELECT id, case_id, step, idempotency_key, status, request, outcome, request_id,
        error_code, error_message, begins, started_at, finished_at, last_attempt_at FROM step_attempts;
DROP TABLE step_attempts;
ALTER TABLE step_attempts_v7 RENAME TO step_attempts;
CREATE INDEX step_attempts_case ON step_attempts (case_id, id);
CREATE INDEX step_attempts_intent ON step_attempts (case_id) WHERE status = 'intent';

CREATE TABLE timeline_v7 (
    id      INTEGER PRIMARY KEY,
    case_id INTEGER NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    at      INTEGER NOT NULL,
    kind    TEXT    NOT NULL CHECK (kind = 'callback' OR kind = 'command' OR kind = 'decision' OR kind = 'step'
                                    OR kind = 'timer' OR kind = 'reconcile' OR kind = 'note'),
    summary TEXT    NOT NULL,
    detail  TEXT    NOT NULL DEFAULT '{}'
);
INSERT INTO timeline_v7 (id, case_id, at, kind, summary, detail)
    SELECT id, case_id, at, kind, summary, detail FROM timeline;
DROP TABLE timeline;
ALTER TABLE timeline_v7 RENAME TO timeline;
CREATE INDEX timeline_case ON timeline (case_id, id);

-- +migration 8: one open case per 1688 order, whatever else a command carried
-- A 1688 case is one per order. cases_one_open includes sub_order_id, so a
-- request sent with a sub-order id and a corrected one without it could open
-- two cases for one order and send two creates. Cases that already break the
-- rule are not merged: every open 1688 case after the first of its order is
-- marked with duplicate_of (the first one's id) and otherwise left as it is;
-- the worker reports them at every start. The index covers unmarked cases.
ALTER TABLE cases ADD COLUMN duplicate_of INTEGER NOT NULL DEFAULT 0;
UPDATE cases SET duplicate_of = (
        SELECT MIN(o.id) FROM cases o
        WHERE o.platform = '1688' AND o.order_id = cases.order_id AND o.id < cases.id
          AND o.state <> 'succeeded' AND o.state <> 'closed' AND o.state <> 'cancelled')
    WHERE platform = '1688' AND state <> 'succeeded' AND state <> 'closed' AND state <> 'cancelled'
      AND EXISTS (SELECT 1 FROM cases o
        WHERE o.platform = '1688' AND o.order_id = cases.order_id AND o.id < cases.id
          AND o.state <> 'succeeded' AND o.state <> 'closed' AND o.state <> 'cancelled');
CREATE UNIQUE INDEX cases_one_open_1688_order ON cases (order_id)
    WHERE platform = '1688' AND duplicate_of = 0
      AND state <> 'succeeded' AND state <> 'closed' AND state <> 'cancelled';

-- +migration 9: inputs that wait in the store, and a case's failed inputs as a number
-- An input whose case must wait (a side effect's attempt may still be in
-- flight, an intent waits for evidence, another process holds the case) is
-- kept here with the time it can go on, and its message is acknowledged:
-- waiting never holds a slot of the consumer. The worker's timer applies the
-- due ones, oldest first per case; the row goes in the transaction that
-- records the input in the inbox. failed_inputs counts the inputs of a case
-- in a row that ended in "retry later" (the retry backoff's exponent).
CREATE TABLE deferred_inputs (
    id          INTEGER PRIMARY KEY,
    case_id     INTEGER NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    msg_id      TEXT    NOT NULL UNIQUE,          -- the inbox key of the input's message
    source      TEXT    NOT NULL CHECK (source = 'commands' OR source = 'callbacks'),
    payload     BLOB    NOT NULL,                 -- the message body as received
    stream      TEXT    NOT NULL DEFAULT '',
    stream_seq  INTEGER NOT NULL DEFAULT 0,
    subject     TEXT    NOT NULL DEFAULT '',
    not_before  INTEGER NOT NULL,                 -- when it can get further
    reason      TEXT    NOT NULL DEFAULT '',      -- why it waits (a decision code)
    attempts    INTEGER NOT NULL DEFAULT 0,       -- times it was taken up and had to wait again
    created_at  INTEGER NOT NULL
);
CREATE INDEX deferred_inputs_due ON deferred_inputs (not_before);
CREATE INDEX deferred_inputs_case ON deferred_inputs (case_id, id);
ALTER TABLE cases ADD COLUMN failed_inputs INTEGER NOT NULL DEFAULT 0;

-- +migration 10: discarded dead letters
-- An operator who decides a dead letter is never to be retried discards it
-- (refundctl dead-letters discard): the row stays, for the record, with when,
-- by whom and why. A discarded row keeps its place in dead_letters_pending,
-- which older builds upsert on, so the same message dying again while the
-- discarded row stands is not recorded twice: the discard covers it.
ALTER TABLE dead_letters ADD COLUMN discarded_at INTEGER;                -- NULL: not discarded
ALTER TABLE dead_letters ADD COLUMN discarded_by TEXT NOT NULL DEFAULT ''; -- the operator
ALTER TABLE dead_letters ADD COLUMN discard_note TEXT NOT NULL DEFAULT ''; -- why

-- +migration 11: command outcomes (a command's verdict, for the operator)
-- What the worker made of each operator command, keyed by the command's id
-- (refundflow.Command.ID), so that refundctl can tell the operator whether
-- it was applied or rejected instead of only that it was published. The row
-- is written in the transaction of the command's own decision, or of its
-- dead letter, so it exists exactly when that effect does. A decision's
-- verdict is final; a dead letter's stands until the command, retried, is
-- decided or dies again (dead_letter_id <> 0 marks those). Pruned with the
-- inbox.
CREATE TABLE command_outcomes (
    command_id     TEXT PRIMARY KEY,
    verdict        TEXT    NOT NULL CHECK (verdict = 'applied' OR verdict = 'rejected'),
    case_id        INTEGER NOT NULL DEFAULT 0,  -- the case it was applied to or refused on; 0: none
    code           TEXT    NOT NULL DEFAULT '', -- the decision's code, or the dead-letter reason
    reason         TEXT    NOT NULL DEFAULT '', -- the decision's reason, or the dead letter's error
    dead_letter_id INTEGER NOT NULL DEFAULT 0,  -- dead_letters.id when the verdict is its dead letter
    recorded_at    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX command_outcomes_recorded ON command_outcomes (recorded_at);

-- +migration 12: cases an operator closed locally are finished
-- `refundctl resolve CASE --close --note …` ends a case that needs attention
-- without touching the platform (state closed_locally; the note stays on
-- the timeline). Like the other final states it no longer holds the order's
-- one open case, so the three open-case indexes name it too.
DROP INDEX cases_one_open;
CREATE UNIQUE INDEX cases_one_open ON cases (platform, order_id, sub_order_id)
    WHERE state <> 'succeeded' AND state <> 'closed' AND state <> 'cancelled' AND state <> 'closed_locally';
DROP INDEX cases_one_open_sub_order;
CREATE UNIQUE INDEX cases_one_open_sub_order ON cases (platform, sub_order_id)
    WHERE sub_order_id <> '' AND state <> 'succeeded' AND state <> 'closed' AND state <> 'cancelled' AND state <> 'closed_locally';
DROP INDEX cases_one_open_1688_order;
CREATE UNIQUE INDEX cases_one_open_1688_order ON cases (order_id)
    WHERE platform = '1688' AND duplicate_of = 0
      AND state <> 'succeeded' AND state <> 'closed' AND state <> 'cancelled' AND state <> 'closed_locally';

-- +migration 13: order events, kept as facts about the order
-- An order message (status change, price correction) is recorded here once
-- (msg_id), in the transaction that records its message in the inbox,
-- whether or not a case is open on the order: a later request reads it. Each
-- open case of the order gets a timeline entry in the same transaction
-- (an ended order or a new price also an early wake), and reads the events
-- after order_events_seen before its next step: a price correction before
-- submission renders the form again, an ended order ends a request not yet
-- submitted.
CREATE TABLE order_events (
    id              INTEGER PRIMARY KEY,
    platform        TEXT    NOT NULL CHECK (platform = 'taobao' OR platform = '1688'),
    order_id        TEXT    NOT NULL CHECK (order_id <> ''),
    msg_id          TEXT    NOT NULL UNIQUE,     -- the inbox key of the message
    message_type    TEXT    NOT NULL,            -- as the platform sent it
    kind            TEXT    NOT NULL,            -- platform.Kind: order_status or price_modify
    order_status    TEXT    NOT NULL DEFAULT '',
    ended           INTEGER NOT NULL DEFAULT 0,  -- the profile says the status ends the order
    close_reason    TEXT    NOT NULL DEFAULT '',
    total_amount    INTEGER NOT NULL DEFAULT 0,  -- fen
    product_amount  INTEGER NOT NULL DEFAULT 0,  -- fen
    shipping_fee    INTEGER NOT NULL DEFAULT 0,  -- fen
    body            TEXT    NOT NULL DEFAULT '{}',
    received_at     INTEGER NOT NULL
);
CREATE INDEX order_events_order ON order_events (platform, order_id, id);
ALTER TABLE cases ADD COLUMN order_events_seen INTEGER NOT NULL DEFAULT 0;   -- order_events.id the case has decided on
ALTER TABLE cases ADD COLUMN order_events_latest INTEGER NOT NULL DEFAULT 0; -- the newest order_events.id of its order (no read when equal)

-- +migration 14: the seller conversation; an order's cases in order
-- The messages of a Taobao refund (T8), kept once each per case with the
-- platform's id: the worker reads the list when it wakes or a callback
-- arrives, at most once per WORKER_MESSAGES_INTERVAL (messages_checked_at),
-- and each new one goes on the timeline. New seller messages count in
-- unread_seller_messages until an operator reads them (refundctl messages).
-- cases_order finds the earlier case of an order, which a new request's
-- case names as the one it follows.
CREATE TABLE case_messages (
    id           INTEGER PRIMARY KEY,
    case_id      INTEGER NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    message_id   TEXT    NOT NULL CHECK (message_id <> ''),
    author       TEXT    NOT NULL,            -- buyer, seller or system, as the platform says
    content      TEXT    NOT NULL DEFAULT '',
    images       TEXT    NOT NULL DEFAULT '', -- as the platform lists them
    sent_at      INTEGER NOT NULL,            -- the platform's time, ms (0: none given)
    recorded_at  INTEGER NOT NULL,
    UNIQUE (case_id, message_id)
);
ALTER TABLE cases ADD COLUMN messages_checked_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cases ADD COLUMN unread_seller_messages INTEGER NOT NULL DEFAULT 0;
CREATE INDEX cases_order ON cases (platform, order_id, id);

-- +migration 15: console accounts and API tokens
-- Named operator accounts of the console (refundctl console users) and the
-- API tokens they hold (refundctl console tokens), in the case store so that
-- disabling an account or revoking a token takes effect at the console's
-- next request, with no restart and no second list to keep in step. A
-- password is kept as its bcrypt hash (cost and salt inside); a token, 32
-- random bytes, as its SHA-256 in hex: high entropy needs no slow hash, and
-- the console finds a token by its hash through the unique index. Neither
-- is ever kept in clear. Accounts are disabled, never deleted, so a name is
-- never reused and the timeline's operator names stay unambiguous.
CREATE TABLE console_accounts (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE CHECK (name <> ''),
    role          TEXT    NOT NULL CHECK (role IN ('viewer', 'operator')),
    password_hash TEXT    NOT NULL CHECK (password_hash <> ''),
    created_at    INTEGER NOT NULL,
    created_by    TEXT    NOT NULL DEFAULT '',
    disabled_at   INTEGER,                       -- NULL: active
    disabled_by   TEXT    NOT NULL DEFAULT '',
    disable_note  TEXT    NOT NULL DEFAULT ''
);
CREATE TABLE console_tokens (
    id            INTEGER PRIMARY KEY,
    account_id    INTEGER NOT NULL REFERENCES console_accounts (id),
    label         TEXT    NOT NULL DEFAULT '',
    token_sha256  TEXT    NOT NULL UNIQUE CHECK (length(token_sha256) = 64),
    created_at    INTEGER NOT NULL,
    created_by    TEXT    NOT NULL DEFAULT '',
    revoked_at    INTEGER,                       -- NULL: valid
    revoked_by    TEXT    NOT NULL DEFAULT '',
    revoke_note   TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX console_tokens_account ON console_tokens (account_id, id);

-- +migration 16: indexes for the console's case lists
-- The console lists cases filtered and sorted over 100,000 and more rows
-- (docs/console.md), a page at a time with a keyset cursor: each order
-- (casestore.CaseSort) needs an index on its keys, so that a page reads its
-- rows in order and stops at the limit instead of sorting every match.
-- updated_at and created_at orders: these two (the rowid, the id, ends each
-- index). The state order is (state, updated_at, id): cases_state already.
CREATE INDEX cases_updated ON cases (updated_at);
CREATE INDEX cases_created ON cases (created_at);
-- A state filter under each order: cases_state serves the update order;
-- without these, a state holding a few thousand cases would be sorted
-- whole for one page in the creation or id order. Both change only when a
-- case's state does.
CREATE INDEX cases_state_created ON cases (state, created_at);
CREATE INDEX cases_state_id ON cases (state);
-- The overview counts open cases by platform and state from this index
-- alone, in its order (no sort). Its predicate is casestore's
-- terminalFilter, spelled the same, so that the query matches it.
CREATE INDEX cases_open_platform_state ON cases (platform, state)
    WHERE state <> 'succeeded' AND state <> 'closed' AND state <> 'cancelled' AND state <> 'closed_locally';
-- Attention filters: few cases carry a code, so a partial index keeps them
-- all in a few pages, and costs nothing on the writes of other cases. It
-- holds every column the lists filter and sort them by, so that finding
-- and sorting them (and counting the open ones) reads the index alone.
CREATE INDEX cases_attention ON cases (attention_code, updated_at, created_at, state, platform)
    WHERE attention_code <> '';
-- Free text matches a prefix of the order, sub-order, refund or opening
-- command id (opened_by has cases_opened_by): one range per column, read
-- from these indexes and merged (SQLite's OR optimisation).
CREATE INDEX cases_order_id ON cases (order_id);
CREATE INDEX cases_sub_order_id ON cases (sub_order_id) WHERE sub_order_id <> '';
CREATE INDEX cases_refund_id ON cases (refund_id) WHERE refund_id <> '';
-- The overview's last platform errors, newest first.
CREATE INDEX step_attempts_errors ON step_attempts (started_at) WHERE error_code <> '';

-- +migration 17: the free-text search reads the worker's indexes
-- Migration 16's single-column indexes on order_id, sub_order_id and
-- refund_id served only the console's free-text search, and every case
-- update (each of which changes updated_at, so none is a heap-only update
-- on PostgreSQL) added an entry to each. The search now reads cases_order,
-- cases_taobao_sub_order and cases_refund, whose keys start with the
-- platform, once per platform (casestore's textFilter).
DROP INDEX cases_order_id;
DROP INDEX cases_sub_order_id;
DROP INDEX cases_refund_id;

-- +migration 18: order events' order ids compare bytewise
-- PostgreSQL only: here order_events.order_id already compares as
-- cases.order_id does (BINARY). On PostgreSQL, order_events.order_id was
-- created with the database's default collation and cases.order_id with
-- "C" (migration 1): the read before each decision (casestore's
-- caseToDecide) joins the two, and with unlike collations its order_id
-- condition could not use order_events_order, which then matched the
-- platform and the id only. Each decision of a case with an unseen order
-- event read every event its platform had received since the case last
-- looked. The column now compares bytewise, as the other platform ids do.
SELECT 1;

-- +migration 19: refused resends of an intent
-- How many times in a row the platform refused an intent's step sent
-- again under its key (casestore's Tx.MarkAttempt, refused). The worker
-- stops resending after WORKER_INTENT_RESENDS refusals; a resend whose
-- outcome is unknown again (a 5xx, a timeout: the platform down) only
-- backs off and starts the count again, so that an outage of the platform
-- does not stop every case it caught, each then waiting for an operator.
ALTER TABLE step_attempts ADD COLUMN refusals INTEGER NOT NULL DEFAULT 0;

-- +migration 20: the last platform errors by when they happened
-- The console's overview lists the newest step errors. An open intent now
-- keeps the error of its newest attempt (casestore's Tx.MarkAttempt): a
-- resend refused today, on an intent begun last week, sorted by its
-- started_at fell to the bottom. The list is ordered by when the error
-- happened: the step's end, else its newest attempt's, else its start.
DROP INDEX step_attempts_errors;
CREATE INDEX step_attempts_error_times ON step_attempts ((COALESCE(finished_at, last_attempt_at, started_at)), id)
    WHERE error_code <> '';

-- +migration 21: a row the worker writes to learn that the store takes writes
-- After a write failed for want of the store (casestore.Unavailable), the
-- worker holds its messages until the store answers again (casestore's
-- Ping). A full disk leaves the store answering reads: Ping must commit a
-- write to tell, and this is the one row it writes, over and over. pad is
-- random bytes, so that the write needs pages of its own (on PostgreSQL
-- the probe grows a table of its own instead: see casestore's PingWrite).
CREATE TABLE store_probe (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    at  INTEGER NOT NULL,
    pad BLOB    NOT NULL
);

-- +migration 22: which stream copy a dead letter is of
-- A message redelivered after its dead letter was written (its Term lost
-- to a crash after the commit, or its stream copy not published) must be
-- terminated as the dead letter said, not applied beside it; a new copy
-- under the same id (a replay, a callback pushed again, a command id used
-- again) must be applied. The stream and sequence of the copy that died
-- tell them apart (casestore's PendingDeadLetter); a copy that dies while
-- an older one's dead letter is pending takes that row over. Rows from
-- before keep '' and 0, which no copy matches.
ALTER TABLE dead_letters ADD COLUMN stream TEXT NOT NULL DEFAULT '';
ALTER TABLE dead_letters ADD COLUMN stream_seq INTEGER NOT NULL DEFAULT 0;

-- +migration 23: dead letters found by their stream copy
-- A copy of a message applied after the server stopped delivering it
-- discards the delivery_limit dead letter of that copy (casework's
-- discardLimit), found by the copy alone (casestore's
-- PendingDeadLetterOfCopy): the id a take-up knows the message by (the
-- callback's own, the command's) may not be the one the dead letter was
-- written under (its Nats-Msg-Id). Old copies (stream '') are not indexed.
CREATE INDEX dead_letters_copy ON dead_letters (stream, stream_seq) WHERE retried_at IS NULL AND stream <> '';

-- +migration 24: worker processes that ended holding a case
-- leases_abandoned counts, in a row, the worker processes that ended
-- (killed, out of memory, a crash no recover catches) while they held the
-- case's lease: a lease another process took over from a holder that
-- never let it go (ReleaseLeasesOf for a dead process of this host, or
-- an expired lease taken by a statement that takes leases). A holder that
-- lets go of the lease itself sets it back to 0. A case that keeps ending
-- the process would otherwise be woken after every restart, for ever, and
-- take every input in flight down with it; refundflow holds it for an
-- operator (worker_ended) once the count reaches WORKER_ENDED_LIMIT.
ALTER TABLE cases ADD COLUMN leases_abandoned INTEGER NOT NULL DEFAULT 0;
-- A case so held keeps the attention it had (a parked case's reason, a
-- flag) in held_code and held_message, for the operator's retry to give it
-- back: the hold is taken off and the case is as it was.
ALTER TABLE cases ADD COLUMN held_code TEXT NOT NULL DEFAULT '';
ALTER TABLE cases ADD COLUMN held_message TEXT NOT NULL DEFAULT '';

-- +migration 25: dead letters by stream copy, retried or not
-- A command issued before another for its case is applied ahead of it
-- (casework's earlier.go) unless it is settled; a stream copy with a dead
-- letter, pending or retried, is: a retried one lives on as a new copy,
-- with its own place in the stream. Old copies (stream '') are not indexed.
CREATE INDEX dead_letters_any_copy ON dead_letters (stream, stream_seq) WHERE stream <> '';

-- +migration 26: when a case last moved
-- refundctl list's IDLE and --older-than, and the console's older_than,
-- read updated_at, which every write of a case moves: the reconciler's
-- check of each open case every WORKER_RECONCILE_AGE (15m) too. A case
-- stopped for days read as idle for minutes, and `refundctl list --open
-- --older-than 2h` found no stuck case. moved_at is when the case was
-- opened or its state, where it stopped, its attention, its refund or the
-- platform's status last changed (casestore's updateCase); idle is
-- measured from it. 0: not known (casestore's Case.IdleSince then reads
-- updated_at). Migration 27 fills it in for the cases open now.
ALTER TABLE cases ADD COLUMN moved_at INTEGER NOT NULL DEFAULT 0;

-- +migration 27: when the open cases last moved, as near as is known
-- The last decision of an open case that acted (its timeline summary
-- "act …": a decision that waits, retries a failed read or finds nothing
-- new writes "keep", "retry", "noop" or none), else its opening, is the
-- nearest known time it moved: its last update would be the reconciler's
-- last check, and every case stuck at the upgrade would read as idle for
-- minutes. The newest such entry is found walking timeline_case back. Finished cases keep 0 (their last update is shown), which
-- leaves their rows unwritten. The index, of open cases only, serves
-- `list --open --older-than` (what finds stuck cases) and the console's
-- overview; it changes only when an open case moves.
UPDATE cases SET moved_at = MIN(updated_at, COALESCE(
        (SELECT t.at FROM timeline t WHERE t.case_id = cases.id AND t.kind = 'decision' AND t.summary LIKE 'act %'
            ORDER BY t.id DESC LIMIT 1), created_at))
    WHERE state <> 'succeeded' AND state <> 'closed' AND state <> 'cancelled' AND state <> 'closed_locally';
CREATE INDEX IF NOT EXISTS cases_open_moved ON cases (moved_at)
    WHERE state <> 'succeeded' AND state <> 'closed' AND state <> 'cancelled' AND state <> 'closed_locally';
