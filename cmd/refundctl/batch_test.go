package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
)

// writeTemp writes a file under the test's temp dir and returns its path.
func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestBatchWithoutSending: what a batch decides before it sends anything,
// with no stack running (nothing can be sent): --dry-run, --all-or-nothing,
// a file with no valid row, a bad file, flags that do not go with --file.
func TestBatchWithoutSending(t *testing.T) {
	e := newEnv(t)
	good := writeTemp(t, "good.csv", "platform,order,sub-order,goods-status,reason-id,amount\n"+
		"taobao,1001,1002,1,1004,max\ntaobao,1001,1003,1,1004,max\n")
	mixed := writeTemp(t, "mixed.jsonl", `{"platform":"taobao","order":"1001","sub-order":"1002","goods-status":"1","reason-id":1004}`+"\n"+
		`{"platform":"taobao","order":"1001","goods-status":"1","reason-id":1004}`+"\n")
	allBad := writeTemp(t, "bad.csv", "platform,order\ntaobao,1\n1688,2\n")

	r := e.mustRun("request", "--file", good, "--dry-run")
	if !strings.Contains(r.stdout, "line 2: batch-") || !strings.Contains(r.stdout, ": valid\n") ||
		!strings.HasSuffix(r.stdout, "2 rows: 2 valid, 0 invalid; nothing sent (--dry-run)\n") {
		t.Errorf("dry run of a valid file:\n%s", r.stdout)
	}
	r = e.wantErr(2, "1 of 2 rows invalid; nothing sent (--dry-run)", "request", "--file", mixed, "--dry-run")
	if !strings.Contains(r.stdout, "line 2: invalid: sub-order: required for Taobao") {
		t.Errorf("dry run of a JSON Lines file with a bad row:\n%s", r.stdout)
	}
	var out batchJSON
	r = e.run("request", "--file", mixed, "--dry-run", "--json")
	decodeJSON(t, r.stdout, &out)
	if out.Format != formatJSONL || !out.DryRun || len(out.Rows) != 2 || out.Rows[0].Status != rowValid ||
		out.Rows[1].Status != rowInvalid || out.Rows[1].Line != 2 || out.Summary.Invalid != 1 || out.Summary.Rows != 2 {
		t.Errorf("--dry-run --json = %+v", out)
	}
	e.wantErr(2, "1 of 2 rows invalid; nothing sent (--all-or-nothing)", "request", "--file", mixed, "--all-or-nothing")
	e.wantErr(2, "2 of 2 rows invalid; nothing sent (no valid row)", "request", "--file", allBad)
	e.wantErr(2, `header: unknown column "amonut"`, "request", "--file", writeTemp(t, "typo.csv", "platform,amonut\ntaobao,1\n"))
	e.wantErr(2, "no rows; nothing sent", "request", "--file", writeTemp(t, "empty.csv", "platform,order\n\n"))
	e.wantErr(2, "--file: open", "request", "--file", filepath.Join(t.TempDir(), "missing.csv"))
	e.wantErr(2, "--platform: with --file the rows give it", "request", "--file", good, "--platform", "taobao")
	e.wantErr(2, "--case: with --file each row names its case", "request", "--file", good, "--case", "3")
	e.wantErr(2, "--dry-run: only with --file", "request", "--platform", "taobao", "--order", "1", "--sub-order", "2",
		"--goods-status", "1", "--reason-id", "1", "--dry-run")
	e.wantErr(2, `--format "xlsx": want csv or jsonl`, "request", "--file", good, "--format", "xlsx")
	e.wantErr(2, `required flag(s) "goods-status" not set`, "request", "--platform", "taobao", "--order", "1", "--sub-order", "2", "--reason-id", "1")

	// Valid rows need the store (it says what was filed before): without
	// it nothing is sent.
	e.vars["DB_PATH"] = filepath.Join(t.TempDir(), "none.db")
	e.wantErr(1, "no case store at", "request", "--file", good)
	e.wantErr(1, "nothing sent", "request", "--file", good, "--no-wait")
}

func TestListExportUsage(t *testing.T) {
	e := newEnv(t)
	e.wantErr(2, `--export "xlsx": want csv`, "list", "--export", "xlsx")
	e.wantErr(2, "--export and --json: give one", "list", "--export", "csv", "--json")
}

// TestBatchRowsWithoutAVerdictSayWhereJetStreamHasThem: a batch's rows
// still pending when its wait ended said "the worker has not decided it
// yet (is it running?)", whatever the worker was doing, as single
// commands did. They say where JetStream has them.
func TestBatchRowsWithoutAVerdictSayWhereJetStreamHasThem(t *testing.T) {
	e := newEnv(t)
	st := e.openStore() // the worker's, migrated; no worker runs
	seedCases(t, st)
	good := writeTemp(t, "good.csv", "platform,order,sub-order,goods-status,reason-id,amount\n"+
		"taobao,1001,1002,1,1004,max\ntaobao,1001,1003,1,1004,max\ntaobao,1001,1004,1,1004,max\n")
	// The third row's command, kept by the worker for a case (behind an
	// earlier input of it): its message is acknowledged, and JetStream
	// would call it handled; the row says where the worker keeps it.
	dry := e.mustRun("request", "--file", good, "--dry-run")
	kept := regexp.MustCompile(`line 4: (batch-[0-9a-f]+): valid`).FindStringSubmatch(dry.stdout)
	if kept == nil {
		t.Fatalf("no id for line 4 in the dry run:\n%s", dry.stdout)
	}
	ctx := context.Background()
	if err := st.Update(ctx, func(tx *casestore.Tx) error {
		return tx.Defer(ctx, casestore.DeferredInput{CaseID: 1, MsgID: kept[1], Source: casestore.SourceCommands, Payload: []byte(`{}`),
			NotBefore: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), Reason: "behind_earlier_input: an earlier input of the case waits"})
	}); err != nil {
		t.Fatal(err)
	}
	r := e.run("request", "--file", good, "--wait", "300ms")
	if r.code() != exitPending || !strings.HasSuffix(r.stdout, "3 rows: 3 filed, 0 already filed, 0 invalid; verdicts: 0 applied, 0 rejected, 3 pending\n") {
		t.Fatalf("a batch with no worker: exit %d (%s)\n%s", r.code(), r.line(), r.stdout)
	}
	if want := kept[1] + ": filed: pending: kept by the worker for case 1 until 2030-01-02 03:04:05 UTC (behind_earlier_input"; !strings.Contains(r.stdout, want) {
		t.Errorf("the kept row does not say where the worker keeps it (%q):\n%s", want, r.stdout)
	}
	for _, sub := range []string{"1002", "1003"} {
		want := "pending: sent; no worker takes commands: no worker consumer on stream COMMANDS takes commands.taobao.request_refund.taobao_" + sub
		if !strings.Contains(r.stdout, want) {
			t.Errorf("row of sub-order %s does not say where JetStream has it (%q):\n%s", sub, want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "is it running") {
		t.Errorf("a batch's pending rows still ask whether the worker runs, with no worker consumer at all:\n%s", r.stdout)
	}
}

// TestABatchFiledThroughTheConsoleSaysWhereItsRowsAre: a batch filed
// through the console (REFUNDHUB_URL) with no worker asking: each
// pending row says where JetStream has it, asked of the console at the
// stream and sequence it stored the row at (they said "is it running?").
func TestABatchFiledThroughTheConsoleSaysWhereItsRowsAre(t *testing.T) {
	e := newEnv(t)
	st := e.openStore()
	seedCases(t, st)
	if _, err := e.js.CreateOrUpdateConsumer(context.Background(), events.DefaultCommandStreamName, jetstream.ConsumerConfig{Durable: "worker",
		FilterSubject: events.SubjectCommands + ".>", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	url := startConsole(e)
	good := writeTemp(t, "good.csv", "platform,order,sub-order,goods-status,reason-id,amount\n"+
		"taobao,1001,1002,1,1004,max\ntaobao,1001,1003,1,1004,max\n")
	r := e.remoteRun(url, consoleOperatorToken, "request", "--file", good, "--wait", "300ms")
	if r.code() != exitPending || !strings.HasSuffix(r.stdout, "2 rows: 2 filed, 0 already filed, 0 invalid; verdicts: 0 applied, 0 rejected, 2 pending\n") {
		t.Fatalf("a batch through the console with no worker asking: exit %d (%s)\n%s", r.code(), r.line(), r.stdout)
	}
	if n := strings.Count(r.stdout, "filed: pending: sent; waiting in JetStream: no worker is asking for commands now"); n != 2 || strings.Contains(r.stdout, "has not decided it yet") {
		t.Errorf("%d rows say where JetStream has them; want both, none asking only whether the worker runs:\n%s", n, r.stdout)
	}
}
