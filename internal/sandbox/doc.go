// Package sandbox is a stateful local simulator of the Xportcn/PandaPon
// after-sales OpenAPI (reference: shared/reference/upstream-api.md): the signed
// Taobao and 1688 refund endpoints, per-platform refund state machines, a
// configurable seller, and the callback pusher. Tests and local runs use it in
// place of the real platform, over real HTTP.
//
// # API
//
// Every endpoint of Paths (Config.Paths, default
// DefaultPaths) is served. Methods: TaobaoReturnLogisticsRender,
// TaobaoCancel, TaobaoQuery and AlibabaLogisticsCompanies are GET, the rest
// POST (JSON body; AlibabaUploadVoucher multipart with field imageData). A
// {refundId} in a path template is taken from the path; GET endpoints without
// one read ?refundId=. AlibabaRefundInfo reads refundId from the JSON body or
// the query (both documented). Every answer is the envelope
// {requestId (32 lowercase hex), code, developId (string), msg, data};
// success is code 200, msg "成功".
//
// Checks, in this order, each with its own envelope code:
//
//	access-key, timestamp, user-id or signature header missing  apiclient.CodeMissingAuth      4011
//	access-key not Config.AccessKey                              apiclient.CodeUnknownAccessKey 4012
//	timestamp not 10-digit s / 13-digit ms, or outside ±window   apiclient.CodeExpiredTimestamp 4014
//	signature != legacySign(key, ts, nonce-str or "", secret) apiclient.CodeBadSignature    4013
//	body not a JSON object, or a field of the wrong type          apiclient.CodeMalformedJSON    4001
//	required field absent, null or ""                             apiclient.CodeMissingParam     4002
//	field out of range / not allowed; body > 1 MiB                apiclient.CodeInvalidParam     4003
//	order, sub-order or refund unknown (unless AutoCreate)        apiclient.CodeNotFound         4041
//	operation not allowed in the refund's state                   apiclient.CodeIllegalState     4091
//	an open (non-terminal) refund exists for the sub-order/order  apiclient.CodeDuplicateRefund  4092
//	injected: rate limited / internal                             apiclient.CodeRateLimited 4290, CodeInternal 5000
//
// Business errors use HTTP 200 (GUESS: only HTTP 200 is documented). Unknown
// paths answer HTTP 404 and a wrong method HTTP 405, both with an envelope.
// AlibabaGoodsReturn reports business failures (duplicate return, wrong
// state, unknown logisticsCompanyNo, bad freightBill) the documented nested
// way: envelope code 200 and data {success:false, errorCode, errorInfo}, where
// errorCode is the apiclient code as a string ("4091", "4003").
//
// Injected faults (Faults: latency, random errors, ForceErrors) act before
// authentication, like a gateway in front of the platform (the Taobao list
// paging faults, described with T1 below, are the platform's own); every call,
// failed or not, counts in Stats.APICalls. A ForcedError with AfterEffect
// runs the call to completion (state changes, callbacks queued) and then
// answers with the error. Stats.RefundSubmissions and
// ReturnLogisticsSubmissions count every authenticated, well-formed attempt
// whose order/sub-order/refund was found, whether or not the business rules
// then accepted it; DuplicateSubmissions counts the ones rejected because an
// open refund (or a return shipment) already existed. Refunds seeded through
// the admin API (below) are not submissions and count nowhere.
//
// # Taobao reverse orders (statuses apiclient.TaobaoRefundStatus)
//
//	submit (T7)                          -> WAIT_SELLER_AGREE
//	WAIT_SELLER_AGREE   seller agree     -> SUCCESS (refundType 1) | WAIT_BUYER_RETURN_GOODS (refundType 2)
//	WAIT_SELLER_AGREE   seller refuse    -> SELLER_REFUSE_BUYER
//	WAIT_SELLER_AGREE   require return   -> WAIT_BUYER_RETURN_GOODS
//	WAIT_BUYER_RETURN_GOODS  return logistics submit (T4) -> WAIT_SELLER_CONFIRM_GOODS
//	WAIT_SELLER_CONFIRM_GOODS seller receive -> SUCCESS
//	WAIT_SELLER_AGREE | WAIT_BUYER_RETURN_GOODS | SELLER_REFUSE_BUYER  buyer cancel (T5) -> CLOSED
//	WAIT_SELLER_AGREE | SELLER_REFUSE_BUYER  modify (T9) -> WAIT_SELLER_AGREE
//	any open state  admin close -> CLOSED
//
// Render (T2) validates refundType (1 refund only, 2 return and refund) and
// goodsStatus (1 not shipped, 2 not received, 3 received; refundType 2 needs
// 2 or 3), returns a fixed reason list per (refundType, goodsStatus) — reasons
// whose tips say so need refundImages — and maxRefundFee = sub-order amount
// minus amounts already refunded (min 1, canEditRefundFee true). saleFlag is
// false when the order is unpaid or cancelled, nothing is left to refund or an
// open refund exists. Submit and modify require a rendered reasonId and
// 1 <= refundFee <= max. Refund ids are 19 digits. refundStatus is a string
// everywhere except TaobaoQuery with Config.TaobaoNumericStatus, where it is
// the number of apiclient.DefaultTaobaoStatusCodes (0 WAIT_SELLER_AGREE …
// 5 SUCCESS). Return logistics render (T3) and submit (T4) work only in
// WAIT_BUYER_RETURN_GOODS; T4 needs a logisticsCompanyCode from T3's list and
// a logisticsNo of 6-40 letters/digits; a second T4 for the same refund is
// CodeIllegalState. Messages (T6, T8) are kept per refund, with system and
// seller messages added on transitions; T6 is refused on closed refunds.
//
// The list (T1) filters on refundId, purchaseOrderId (order id),
// salesOrderId (order no), refundStatus (the numeric codes) and
// refundStartTime/refundEndTime (ms, on the refund's creation time), sorts by
// creation time then refund id, and answers {total, pageNo, pageSize, list}
// for pageNo (default 1) and pageSize (1-100), list holding the
// refundOrderAggregates from (pageNo-1)*pageSize. An order has one refund per
// submission: several sub-orders each with their refunds, and on one
// sub-order any number of terminal refunds (a new one may be submitted once
// the last is CLOSED or, with something left to refund, SUCCESS), so a list
// can run to many pages. Two faults change the paging (off by default):
// Faults.TaobaoListOmitTotal leaves the "total" key out of the data (absent,
// not 0); Faults.TaobaoListMaxPageSize N makes T1 return at most N items
// whatever pageSize asked, cut pages with N (offset (pageNo-1)*N, not
// (pageNo-1)*pageSize) and report N in pageSize. pageSize in the answer is
// always the size the platform used.
//
// # 1688 after-sales orders (statuses apiclient.AlibabaRefundStatus)
//
//	create (A4)                      -> waitselleragree
//	waitselleragree  seller agree    -> refundsuccess (disputeRequest refund) | waitbuyersend (returnRefund)
//	waitselleragree  seller refuse   -> waitbuyermodify (rejectReason, rejectTimes+1)
//	waitselleragree  require return  -> waitbuyersend
//	waitbuyersend    goods return (A5) -> waitsellerreceive
//	waitsellerreceive seller receive -> refundsuccess
//	any open state   admin close     -> refundclose
//
// Refund ids are "TQ" + 16 digits; order ids positive int64 (19 digits when
// generated). Create validates disputeRequest (returnRefund only with a
// received goodsStatus), goodsStatus, applyPayment (1..paid-refunded),
// applyCarriage (0..carriage-refunded), applyReasonId (from A2 for that
// goodsStatus), description (2-150 characters), vouchers (at most 5, at least
// one if the reason needsVoucher). A5 validates logisticsCompanyNo against A6
// and freightBill. There is no buyer modify or cancel endpoint for 1688, so a
// refund in waitbuyermodify stays open until an operator closes it.
//
// Times: A1 reports the refund's creation in gmtCreate, gmtApply and
// createTime, its last change in gmtModified and updateTime and its end in
// gmtCompleted, all "yyyy-MM-dd HH:mm:ss" in China time (UTC+8). The Taobao
// refundOrder documents no creation time and carries none;
// purchaseOrderLine.createTime (ms) is the order line's creation, not the
// refund's, and T1's refundStartTime/refundEndTime are the only place a
// Taobao refund's creation time shows.
//
// # Refunds that predate the worker
//
// SeedRefund (POST /_sandbox/refunds, a RefundSeed) puts a refund straight
// into the platform's state, as if the buyer had applied on the platform's
// web page before the worker saw the order, or the worker's database had been
// restored from an older backup: on a Taobao sub-order or a 1688 order, in
// any status of the machines above (terminal ones included), with a given
// creation time (default now) and last-change time (default the creation).
// From then on it is a refund like any other: T1 lists it (and filters on its
// creation time), T10 and A1 show it, the seller policy acts on it, an open
// one makes a new submission a duplicate (4092) and turns T2's saleFlag off,
// a SUCCESS/refundsuccess one has used up its amount, a CLOSED/refundclose
// one blocks nothing. The form fields default to a plain refund of the whole
// refundable amount (see RefundSeed) and are validated as a submission's
// would be, except that a closed refund may ask for an amount later refunded
// by another one and vouchers are never required. Statuses after the goods
// were sent back get a generated return shipment (first carrier of the list).
// It pushes no callback unless push_callback is set, and moves no Stats
// counter. Only one open refund per sub-order (Taobao) or order (1688) may
// exist: seeding a second is a conflict, as is a taken refund_id.
//
// # Seller
//
// SellerPolicy (global via SetSeller or PUT /_sandbox/seller; per order via
// the order's "seller") decides a refund waiting for the seller after
// DecideAfter: agree, refuse (RefuseReason), require_return, or manual (only
// admin actions move it). After a return is shipped the seller confirms
// receipt after ReceiveAfter (not under manual). Decisions run in Run's
// scheduler (a time-ordered queue and one timer on the real clock); a refund
// changed in between makes a pending decision stale.
//
// # Callbacks
//
// Every refund state change queues ORDER_BUYER_VIEW_ORDER_BUYER_REFUND
// (messagePlatform 0 Taobao, 1 1688; messageBody = callback.RefundBody JSON as
// a string; timestamp ms as a string). Admin order creation queues
// ORDER_CREATE and order events queue ORDER_PAY_SUCCESS, ORDER_CANCEL and
// ORDER_BUYER_VIEW_ORDER_PRICE_MODIFY (callback.OrderBody). Run POSTs them to
// CallbackURL (application/json, no auth headers) with at most
// PushConcurrency in flight; success is HTTP 200 within PushTimeout, otherwise
// the push is retried every PushRetryInterval up to PushRetries times and then
// given up. Faults: DuplicatePushRate sends a second copy, ReorderPushRate
// holds a push until the next one has been queued (at most 5s), DropPushRate
// never sends it.
//
// # Admin endpoints (JSON; errors {"error":{"code","message"}})
//
//	GET  /_sandbox/healthz
//	GET  /_sandbox/stats                     Stats
//	GET|PUT /_sandbox/faults                 Faults (PUT replaces; durations as "50ms")
//	GET|PUT /_sandbox/seller                 SellerPolicy
//	POST /_sandbox/orders                    CreateOrderRequest -> Order (pushes ORDER_CREATE)
//	GET  /_sandbox/orders/{orderId}[?platform=taobao|1688]
//	POST /_sandbox/orders/{orderId}/events   OrderEvent {"type":"pay"|"cancel"|"price_modify","total_amount":N}
//	POST /_sandbox/refunds                   RefundSeed -> Refund (no callback unless push_callback)
//	GET  /_sandbox/refunds/{refundId}        Refund
//	POST /_sandbox/refunds/{refundId}/actions RefundAction {"action":"agree"|"refuse"|"require_return"|"receive"|"close","reason":"..."}
//	GET  /_sandbox/callbacks                 {"callbacks":[CallbackRecord…]}
//	POST /_sandbox/callbacks/retry-now       {"queued":N}
//	POST /_sandbox/reset                     clears orders, refunds, stats, callbacks
//
// Admin error codes: malformed_json and invalid_argument (400), not_found
// (404), illegal_state and conflict (409), method_not_allowed (405). Unknown
// fields in admin bodies are rejected. SeedRefund's errors wrap ErrNotFound,
// ErrConflict and ErrIllegalState, which the endpoint answers as above.
//
// Orders default to status WAITING_FOR_SENT (paid) and one sub-order of
// DefaultOrderAmount fen; with AutoCreate, unknown ids get such an order on
// first use (no ORDER_CREATE push).
//
// # GUESSES about the real platform
//
//   - error codes and HTTP 200 for business errors (the code table is unknown);
//   - signature over access-key+timestamp+nonce-str+secret, missing nonce = "";
//     both 10- and 13-digit timestamps accepted;
//   - the paths, bodies and responses of T3, T4, T7, T8, T9, A2, A3, A6 (see
//     Paths.Guessed) and A6's data being a plain array;
//   - Taobao refundType/goodsStatus meanings, status names and numeric codes,
//     reason lists, 19-digit refund ids, amounts in fen;
//   - 1688 reason ids/names, needVoucher flags and the logistics company list;
//   - seller behaviour, receiver address, timeouts (timeoutDate = last change + 7 days);
//   - Taobao callbacks using the 1688 message type names with messagePlatform 0,
//     and the refund body fields beyond refundId and orderId;
//   - a cancelled or closed refund cannot be cancelled again (CodeIllegalState,
//     not an idempotent success);
//   - order status names beyond WAITING_FOR_PAYMENT, WAITING_FOR_SENT, CANCEL.
//
// Not simulated: 1688's "full amount while waiting for shipment" rule,
// consistency between goodsStatus and the order's shipping state, callback
// signing, seller timeouts.
package sandbox
