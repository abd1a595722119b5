// Package refundflow decides what a refund case does next. Its core,
// Decider.Decide, is a pure function of (case, platform view, input): no I/O,
// no clock, so every state and input can be tested without a platform. The
// worker fetches views, runs steps, records intents and results in casestore
// and feeds the results back in.
//
// # Inputs
//
// Operator commands (request a refund, report the return shipment, cancel,
// send a message), platform callbacks, timers and reconcile ticks, and the
// results of steps. A callback is only a hint: without a view the decision is
// OutcomeFetch, and the worker decides again with the view it fetched. Timers
// and reconcile ticks do the same for any case that may have something on the
// platform.
//
// # Taobao
//
//	requested ──render──▶ rendering ──(reason+fee chosen within the form's bounds)──▶ submitting
//	submitting ──submit ok──▶ waiting_seller
//	waiting_seller ──wait_buyer_return──▶ waiting_return_shipment
//	waiting_return_shipment ──ship command──▶ return_rendering ──carrier offered──▶ return_submitting
//	return_submitting ──submit ok──▶ waiting_seller_receive
//	waiting_seller / waiting_seller_receive ──success──▶ succeeded
//	any waiting state ──closed──▶ closed
//	waiting_seller ──seller_refused──▶ needs_attention (+ message per Policy.RefusalMessage)
//	any state with a refund ──cancel command──▶ cancelling ──cancel ok / closed──▶ cancelled
//	requested, rendering ──cancel command──▶ cancelled (nothing reached the platform)
//
// # 1688
//
//	requested ──reasons──▶ rendering ──reason needs vouchers──▶ uploading_vouchers ──▶ submitting
//	rendering ──reason needs none──▶ submitting ──create ok──▶ waiting_seller
//	waiting_seller ──wait_buyer_return──▶ waiting_return_shipment
//	waiting_return_shipment ──ship command──▶ return_rendering (logistics-company list)
//	return_rendering ──company in list──▶ return_submitting ──goods return ok──▶ waiting_seller_receive
//	waiting_seller_receive ──success──▶ succeeded;  any waiting state ──closed──▶ closed
//	waiting_seller ──seller_refused──▶ needs_attention
//	requested, rendering, uploading_vouchers ──cancel command──▶ cancelled (1688 has no cancel API)
//	needs_attention after a submit refused with a business error ──cancel command──▶ cancelled
//
// The platform may skip states (a seller can refund at once): views move a
// case straight to the state they imply, if it ranks higher.
//
// # Order events
//
// Order messages (status changes, price corrections) are kept in the store
// as facts about the order (casestore.OrderEvent); a case reads the ones it
// has not decided on (CaseView.OrderEvents) before its next step, and
// acknowledges them with Decision.OrderEventsSeen. Before submission an
// ended order ends the request (cancelled, order_ended) and a new price
// reads the form again; after it, the case reads its refund (decide_order.go).
// While a submission's outcome is unknown the intent comes first; an ended
// order then settles it once the platform shows no refund from it
// (settleAbsent), and the request ends the same way.
//
// # Needs attention
//
// Business errors from the platform, a reason that is not offered, a fee
// outside the form's bounds, a carrier not on the list, a refusal, an unknown
// status: the case parks in needs_attention, remembering the state it stopped
// at (Parked). A new command (a corrected request before submission, a
// corrected shipment, cancel), platform progress beyond the parked state, or
// the operator's resolve (retry where it stopped, or close it locally:
// closed_locally, decide_resolve.go) takes it out.
//
// # Ranking
//
// Rank orders the phases: requested 10 < rendering = uploading_vouchers =
// submitting 20 < waiting_seller 30 < waiting_return_shipment 40 <
// return_rendering = return_submitting 50 < waiting_seller_receive 60 <
// cancelling 90 < succeeded = closed = cancelled = closed_locally 100;
// needs_attention ranks as its parked state. No decision lowers the rank, so
// a stale or reordered view can never move a case backwards, and terminal
// states are final.
//
// # At most once
//
// Submit, return submit, cancel and message are side effects. The worker
// persists the decision and the step's intent (casestore Tx.BeginStep with
// Step.Key) in one transaction before calling the platform, and the result
// afterwards. A call has three outcomes (StepError.NotApplied): applied;
// certainly not applied (refused before or when it arrived: the intent is
// closed and the step may run again under a new key); or unknown (the
// intent stays open). A step sent again under an open intent (Resume) that
// is refused leaves the intent open too: the refusal says nothing about the
// earlier attempt. While an intent has no result (CaseView.Intent), every
// input yields OutcomeFetch; with the view, Decide settles the intent (Resolution):
// done if the platform shows the effect, re-sent under the same key
// (Step.Resume) only if the platform positively shows it did not happen and
// Policy.InFlight has passed since we stopped waiting for the newest attempt
// (Intent.LastAttempt: a request that timed out on our side may still
// arrive; until then the case waits, CodeInFlight; each resend waits twice
// as long as the one before, and after Policy.ResendLimit the case parks,
// CodeResendsFailed, until an operator retries), settled as not taken
// effect when a submission's order has ended meanwhile (CodeOrderEnded),
// never re-sent if that cannot be told (messages; inconclusive views after
// Policy.IntentGrace). "Positively absent" is: submit, no refund found;
// return submit, the refund waits for the return and holds no waybill;
// cancel, the refund is still open in a known status. A view behind the
// case (a refusal), an unknown status or another waybill proves neither: the
// intent is settled "unverified" and, if the case would otherwise run the
// same step again (a resume under a new key), it parks in needs_attention
// (intent_unverifiable), where only the platform's progress, a cancel or an
// operator moves it (another shipment is refused): on the platform, or, for
// a submission, by adopting the refund found there (ResolveAdopt), which
// closes the intent unconfirmed. A view of
// another refund leaves the intent open. A confirmed effect never leaves the
// case parked at the step that had it. While the case waits for evidence it
// carries the waiting_evidence attention flag with its deadline.
//
// A refund the case has not recorded counts as its own only on evidence
// that ties it to the case: on Taobao it was not among the sub-order's
// refunds listed when the case read its form (Plan.PriorRefunds), and a
// list the walk cannot prove complete proves no absence; on 1688 the
// platform does not date it before the intent began (less
// EngineConfig.ClockSkew). A case that has submitted nothing (beforeSubmit:
// no refund id, no open intent, not past submitting) asks the platform
// nothing: whatever it holds is someone else's.
//
// # Worker contract
//
// For one input on one case (never two at once for the same case):
//
//  0. A refund callback is first recorded: its timeline entry, and its
//     message kept in deferred_inputs, in one transaction that needs no
//     lease (recordCallback). It is then applied as a hint; what follows
//     verifies it, and its last decision drops the kept copy.
//  1. Load the case and its open intent; Decide with a nil view.
//  2. OutcomeFetch: fetch the view (by the case's refund id, else the
//     callback's, else by sub-order on Taobao; Found false only when sure,
//     Inconclusive when it cannot tell), record last_platform_check_at and the
//     status, and Decide again with the view. An operator's adoption
//     (CodeReadToAdopt) reads the refund it names instead, which becomes
//     the case's, status and all, only if it is adopted.
//  3. OutcomeAct: in one transaction write State, Parked, WakeAt, Attention
//     (or clear it), RefundID/Request/Plan/Shipment when set, the Resolve
//     (FinishStep), the timeline, the inbox row, and, for a side-effecting
//     Step, BeginStep(Step.Key); commit; then run the Step outside the
//     transaction and feed its StepResult back (recording FinishStep with the
//     next decision). A timeout or an ambiguous 5xx is a transient StepError:
//     the intent stays open and the next attempt settles it first.
//  4. OutcomeNoOp: store WakeAt (and a waiting flag) if it changed;
//     OutcomeReject: record why; OutcomeRetry: the input waits (see Waits).
//  5. Reapply: after 3 (and the steps it led to), Decide the same input again.
//
// # Waits
//
// A wait is durable state in the store, never an unacknowledged message
// (wait.go, retryLater). An input applied before a step it led to failed is
// done (its inbox row is written) and the case's own timer runs the step
// again at the backoff's time (RetryDelay·2^n, n = cases.failed_inputs). An
// input not applied yet (it waits for an intent to be settled, a failed
// fetch, another process's lease) is kept in deferred_inputs with the time
// it can go on, Handled.Deferred is set, and its message can be settled;
// the worker takes due inputs up in order and hands them back with
// Message.Deferred. A command for a case that has commands waiting goes
// behind them; callbacks, hints, keep no order and hold up nothing. Without a message payload to keep, a wait is handed back as
// a *RetryError.
//
// # Lookahead
//
// A read-only step (render, reasons, voucher upload, return render) needs
// no intent: running it twice is harmless. So the engine runs it before its
// decision commits, decides the next step from the result, and commits both
// decisions in one transaction: the first with the step recorded, the
// second with its side effect's intent (BeginStep) when it has one, before
// that call, as always. A Taobao refund request thus takes three commits
// (the case opened before any platform call; form + submit intent; submit
// result) instead of four. It applies only
// when nothing is to be settled (no open intent, no Resolve); when the next
// decision needs a view or a retry, the first commits alone and the result
// is fed in as usual; on a version conflict or a lease held elsewhere
// nothing commits and the input is decided again (the read runs again). A
// crash before the commit loses only the read. An operator's command is
// the exception where its read is slow: its decision records the verdict
// the operator waits for, so a read not back within a second (a platform
// throttling or slow) no longer holds that commit, which then goes alone
// (lookaheadForVerdict). EngineConfig.NoLookahead turns lookahead off
// (benchmarks compare both).
//
// # Engine
//
// Engine implements the contract over casestore and apiclient: entry points
// in engine.go, the loop in loop.go (load, decide, commit, carry on), the
// commit in commit.go, leases and locks in lease.go, lookahead in
// lookahead.go, retry and backoff in wait.go, the platform's view in
// fetch.go and the platform calls in steps.go. One case is never processed twice at once: an
// in-process lock per case, and across processes a lease column taken in
// the same UPDATE that writes each decision (with the case's optimistic
// version check; casestore's Tx.UpdateCaseLeased), kept and renewed across
// the platform call, dropped with the input's last decision; a crashed holder's lease expires
// after EngineConfig.LeaseTTL (the worker releases a dead process's leases
// of its host at once). An input's message id goes to the inbox with its
// last decision, so a redelivery after a crash re-applies the input
// (decisions are idempotent) and one after the commit is dropped. Inputs
// that can never succeed wrap ErrPermanent (the consumer dead-letters them);
// a command naming an order with no case yet returns ErrNoCase (the
// consumer tries again for a bounded time). A request_refund creates its
// case row, leased and locked, before any platform call, and records its
// command id on it, so a command arriving meanwhile finds the case and a
// late redelivery can never open a second case (and submit a second
// refund).
package refundflow
