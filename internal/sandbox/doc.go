// Package sandbox is a stateful local simulator of the Xportcn/PandaPon
// after-sales OpenAPI (reference: shared/reference/upstream-api.md): the signed
// Taobao and 1688 refund endpoints, per-platform refund state machines, a
// configurable seller, and the callback pusher. Tests and local runs use it in
// place of the real platform, over real HTTP.
//
// # API
//
// The sandbox implements the documented wire contract on its own: it shares
// no type, constant, path or signing code with the client (internal/apiclient)
// or the receiver (internal/callback). Every fact the documentation leaves
// UNKNOWN or INFERRED comes from the platform profile, Config.Profile
// (internal/platform; nil -> platform.Default()): endpoint paths and methods,
// the success code and message, the code of each error class, status names
// and codes, the signature's parts, letter case and window, time layout and
// zone, amount units, the Taobao list's field names and paging, callback
// messagePlatform values, type names and body fields. Run it with another
// profile and its wire output follows, so a client that drifts from the
// profile, or from the documented contract, fails against it.
//
// Every endpoint of the profile's [endpoints] table is served, at its path
// and with its method (names for Faults and Stats: EndpointNames). A
// {refundId} in a path template is taken from the path; GET endpoints
// without one read ?refundId=. AlibabaRefundInfo reads refundId from the JSON
// body or the query (both documented). POST bodies are JSON
// (AlibabaUploadVoucher: multipart with field imageData). Every answer is the
// envelope {requestId (32 lowercase hex), code, developId (string; a number
// with Config.NumericDevelopID, the documented drift), msg, data}; success is
// envelope.success_code and success_msg.
//
// Checks, in this order, each answered with the first code of its class
// (error_codes.*):
//
//	access-key, timestamp, user-id or signature header missing     auth_missing
//	access-key not Config.AccessKey                                 auth_unknown_key
//	timestamp not 10-digit s / 13-digit ms, or outside ±window     auth_expired_timestamp
//	signature not the profile's (parts in order, md5, letter case)  auth_bad_signature
//	body not a JSON object, or a field of the wrong type            malformed_request
//	required field absent, null or ""                               missing_field
//	field out of range / not allowed; body > 1 MiB                  invalid_field
//	order, sub-order or refund unknown (unless AutoCreate)          not_found
//	operation not allowed in the refund's state                     illegal_state
//	an open (non-terminal) refund exists for the sub-order/order    duplicate_refund
//	injected: rate limited / internal                               rate_limited, internal
//
// The signature is the concatenation of signature.parts (an absent nonce-str
// is ""), md5, hex in signature.letter_case. Timestamps of 10 digits
// (seconds) and 13 digits (milliseconds) are both accepted whatever
// signature.timestamp_unit says: whether the platform normalises them is
// UNKNOWN. Failures are answered with HTTP envelope.error_http_status.
// Unknown paths answer HTTP 404 with the not_found code and a wrong method
// HTTP 405, both with an envelope. AlibabaGoodsReturn reports business
// failures (duplicate return, wrong state, unknown logisticsCompanyNo, bad
// freightBill) the documented nested way: envelope success and data
// {success:false, errorCode, errorInfo}, where errorCode is the class's code
// as a string; on success errorCode and errorInfo are null.
//
// Amounts are kept in fen and written in the platform's unit (amounts.*):
// integers of fen, or yuan as decimals with two places; request amounts are
// read the same way (a fraction of a fen is invalid_field). Times are
// written with the first of times.layouts in times.utc_offset.
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
// # Refund states
//
// Both state machines run on platform.Phase; a phase becomes a status name
// (the first of taobao.refund_status.<phase>.names or
// alibaba.refund_status.<phase>.names) only on the wire and in the admin
// API's Refund.Status. Below, states are the product's phases
// (platform.Phase); the profile gives their wire names.
//
// # Taobao reverse orders
//
//	submit (T7)                          -> wait_seller_agree
//	wait_seller_agree   seller agree     -> success (refund only) | wait_buyer_return (return and refund)
//	wait_seller_agree   seller refuse    -> seller_refused
//	wait_seller_agree   require return   -> wait_buyer_return
//	wait_buyer_return  return logistics submit (T4) -> wait_seller_receive
//	wait_seller_receive seller receive -> success
//	wait_seller_agree | wait_buyer_return | seller_refused  buyer cancel (T5) -> closed
//	wait_seller_agree | seller_refused  modify (T9) -> wait_seller_agree
//	any open state  admin close -> closed
//
// Render (T2) validates refundType and goodsStatus against the profile's
// integers (taobao.refund_type, taobao.goods_status; a return needs goods
// not_received or received), returns a fixed reason list per (refund type,
// goods state) — reasons whose tips say so need refundImages — and
// maxRefundFee = sub-order amount minus amounts already refunded (min 1 fen,
// canEditRefundFee true). saleFlag is sent only when the profile puts the
// render on the v2 family (DOC-TB-RENDER-V2; the /open page, SEED-004, has
// none): false when the order is unpaid or cancelled, nothing is left to
// refund or an open refund exists. Submit and modify require a rendered
// reasonId and 1 fen <= refundFee <= max. Refund ids are 19 digits.
// refundStatus is the phase's name everywhere except TaobaoQuery with
// Config.TaobaoNumericStatus, where it is the phase's number
// (taobao.refund_status.<phase>.code). Return logistics render (T3) and
// submit (T4) work only in wait_buyer_return; T4 needs a
// logisticsCompanyCode from T3's list and a logisticsNo of 6-40
// letters/digits; a second T4 for the same refund is illegal_state.
// Messages (T6, T8) are kept per refund: the buyer's description at submit
// (or seed) and T6 messages (owner buyer), a note on each transition (owner
// system), the seller's refusal reason whenever the seller refuses (owner
// seller: the policy, the refuse action, or a seeded refused refund, at its
// last change), and what the admin messages endpoint writes (below). T6 is
// refused on closed refunds. T8 lists them oldest first (ties in the order
// written) as {total, pageNo, pageSize, list} for pageNo (default 1) and
// pageSize (1..MaxListPageSize), each item {messageId (12 digits), owner,
// content, images (comma-separated URLs, "" for none), createTime (ms)}.
//
// The refundOrderAggregate is written as SEED-003 documents it (cancel, and
// the list and T3 whose responses are UNKNOWN): every key present, logistics
// an object (empty strings until the seller asks for the goods back) with
// receiverAddress an object and the company code spelled logisticCompanyCode
// (sic), purchaseOrderLine.properties an object. The query (T10) writes it
// as DOC-TB-QUERY-V2 does: receiverAddress a string, logisticsCompanyCode.
// timeoutDate is the last change + 7 days (a GUESS) while the refund is open.
//
// The list (T1) filters on refundId, taobao.list.order_filter_field (the
// order id), salesOrderId (order no), refundStatus (the profile's numbers)
// and refundStartTime/refundEndTime (ms, on the refund's creation time),
// sorts by creation time then refund id, and answers {total_field,
// page_no_field, page_size_field, items_field} (default total, pageNo,
// pageSize, list) for page_no_field (default taobao.list.first_page) and
// page_size_field (1 to the larger of MaxListPageSize and
// taobao.list.max_page_size), items from (pageNo-first_page)*pageSize. An
// order has one refund per submission: several sub-orders each with their
// refunds, and on one sub-order any number of terminal refunds (a new one
// may be submitted once the last is closed or, with something left to
// refund, success), so a list can run to many pages. Two faults change the
// paging (off by default): Faults.TaobaoListOmitTotal leaves the total key
// out of the data (absent, not 0); Faults.TaobaoListMaxPageSize N makes T1
// return at most N items whatever the page size asked, cut pages with N and
// report N as the page size. The page size in the answer is always the size
// the platform used.
//
// # 1688 after-sales orders
//
//	create (A4)                      -> wait_seller_agree
//	wait_seller_agree  seller agree    -> success (disputeRequest refund) | wait_buyer_return (return_refund)
//	wait_seller_agree  seller refuse   -> seller_refused (rejectReason, rejectTimes+1)
//	wait_seller_agree  require return  -> wait_buyer_return
//	wait_buyer_return    goods return (A5) -> wait_seller_receive
//	wait_seller_receive seller receive -> success
//	any open state   admin close     -> closed
//
// Refund ids are "TQ" + 16 digits; order ids positive int64 (19 digits when
// generated). Create validates disputeRequest and goodsStatus against the
// profile's strings (alibaba.dispute_request, alibaba.goods_status; a return
// only with goods received), applyPayment (1 fen..paid-refunded),
// applyCarriage (0..carriage-refunded), applyReasonId (from A2 for that
// goods status), description (2-150 characters), vouchers (at most 5, at
// least one if the reason needsVoucher). A5 validates logisticsCompanyNo
// against A6 and freightBill. There is no buyer modify or cancel endpoint
// for 1688, so a refund in seller_refused stays open until an operator
// closes it.
//
// A1 answers all 71 fields of SEED-002; a field the sandbox has no value
// for is null, never a zero value (id, the audit columns, Alipay and member
// ids, the upstream flags it does not simulate, gmtCompleted until the end,
// freightBill until the return, refundPayment until the refund succeeds).
// It reports the refund's creation in gmtCreate, gmtApply and createTime,
// its last change in gmtModified and updateTime, its end in gmtCompleted and,
// while it is open, its deadline (last change + 7 days, a GUESS) in
// gmtTimeOut. The Taobao refundOrder documents no creation time and carries
// none; purchaseOrderLine.createTime (ms) is the order line's creation, not
// the refund's, and T1's refundStartTime/refundEndTime are the only place a
// Taobao refund's creation time shows.
//
// # Refunds that predate the worker
//
// SeedRefund (POST /_sandbox/refunds, a RefundSeed) puts a refund straight
// into the platform's state, as if the buyer had applied on the platform's
// web page before the worker saw the order, or the worker's database had been
// restored from an older backup: on a Taobao sub-order or a 1688 order, in
// any status of the machines above (terminal ones included; named as the
// profile names it, or by its phase), with a given
// creation time (default now) and last-change time (default the creation).
// From then on it is a refund like any other: T1 lists it (and filters on its
// creation time), T10 and A1 show it, the seller policy acts on it, an open
// one makes a new submission a duplicate_refund and turns T2's saleFlag off,
// a success one has used up its amount, a closed
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
// DecideAfter: agree, refuse (RefuseReason; on Taobao the reason is also
// written as a seller message, always, so there is no switch for it),
// require_return, or manual (only admin actions move it). PUT /_sandbox/seller is a partial update: fields
// absent from its body keep their values. After a return is shipped the seller confirms
// receipt after ReceiveAfter (not under manual). Decisions run in Run's
// scheduler (a time-ordered queue and one timer on the real clock); a refund
// changed in between makes a pending decision stale.
//
// # Callbacks
//
// Every refund state change queues a message of kind refund; admin order
// creation and order events (pay, cancel) queue kind order_status, a price
// change kind price_modify. The envelope is {messageType, messageBody (a
// JSON object as a string), messagePlatform (callbacks.<platform>.
// message_platform), timestamp (ms as a string)}. The type is the first of
// the platform's callbacks.<platform>.types names of that kind in byte
// order (the profile's table has no order); a kind with no name is not
// pushed. The body has exactly the profile's callbacks.<platform>.fields of
// the kind, in its order: the value the sandbox knows (refundStatus is the
// status name, amounts in the platform's unit, times in the profile's
// layout), null for a field it has no value for. Run POSTs them to
// CallbackURL (application/json, no auth headers) with at most
// PushConcurrency in flight; success is HTTP 200 within PushTimeout,
// otherwise the push is retried every PushRetryInterval up to PushRetries
// times and then given up. Faults: DuplicatePushRate sends a second copy,
// ReorderPushRate holds a push until the next one has been queued (at most
// 5s), DropPushRate never sends it.
//
// # Admin endpoints (JSON; errors {"error":{"code","message"}})
//
//	GET  /_sandbox/healthz
//	GET  /_sandbox/stats                     Stats
//	GET|PUT /_sandbox/faults                 Faults (PUT replaces; durations as "50ms")
//	GET|PUT /_sandbox/seller                 SellerPolicy
//	POST /_sandbox/orders                    CreateOrderRequest -> Order (pushes an order_status message)
//	GET  /_sandbox/orders/{orderId}[?platform=taobao|1688]
//	POST /_sandbox/orders/{orderId}/events   OrderEvent {"type":"pay"|"cancel"|"price_modify","total_amount":N}
//	POST /_sandbox/refunds                   RefundSeed -> Refund (no callback unless push_callback)
//	GET  /_sandbox/refunds/{refundId}        Refund
//	POST /_sandbox/refunds/{refundId}/actions RefundAction {"action":"agree"|"refuse"|"require_return"|"receive"|"close","reason":"..."}
//	POST /_sandbox/refunds/{refundId}/messages MessageRequest {"author":"seller"|"platform","content":"...","images":["https://..."],"push_callback":false} -> 201, the message as T8 lists it
//	GET  /_sandbox/callbacks                 {"callbacks":[CallbackRecord…]}
//	POST /_sandbox/callbacks/retry-now       {"queued":N}
//	POST /_sandbox/reset                     clears orders, refunds, stats, callbacks
//
// Admin error codes: malformed_json and invalid_argument (400), not_found
// (404), illegal_state, conflict and unsupported (409), method_not_allowed
// (405). Unknown fields in admin bodies are rejected.
//
// The messages endpoint lets a test or an operator make the seller (author
// "seller", owner seller) or the platform (author "platform", owner system)
// write on a Taobao refund at any time, closed ones included: content 1-500
// characters, up to 9 absolute http(s) URLs in images (no commas; joined
// with commas, at most 2000 bytes, as T8's images string). It moves nothing
// else: no status, last-change time, seller decision or Stats counter.
// Whether the platform pushes a callback for a new seller message is
// UNKNOWN, so it pushes none unless push_callback, and then the refund
// message of the refund's current status, as a status change would. A 1688
// refund is answered 409 unsupported (1688 has no message API, so no
// conversation to write on), an unknown one 404 not_found, a bad body 400
// with nothing stored. SeedRefund's errors wrap ErrNotFound,
// ErrConflict and ErrIllegalState, which the endpoint answers as above.
//
// Orders default to status WAITING_FOR_SENT (paid) and one sub-order of
// DefaultOrderAmount fen; with AutoCreate, unknown ids get such an order on
// first use (no push), under the id asked for: a 1688 order id, or for
// Taobao the seed's order_id or else the sub-order id itself (generated only
// if another order already has that id).
//
// # The sandbox's own guesses (not in the profile)
//
// The profile holds the guesses the product depends on. The sandbox adds
// its own, which only shape what it answers:
//
//   - the paths' bodies and responses of T3, T4, T7, T8, T9, A2, A3, A6 (the
//     profile's paths are guesses too) and A6's data being a plain array;
//   - the T1 response's items (SEED-003's aggregate) and the echo of the page
//     number and size under the request's field names;
//   - reason lists, 19-digit Taobao refund ids, "TQ" + 16-digit 1688 ones;
//   - 1688 reason ids/names, needVoucher flags and the logistics company list;
//   - seller behaviour, receiver address, timeouts (last change + 7 days);
//   - T8's fields and owner values (buyer, seller, system), and images as
//     one comma-separated string of URLs;
//   - a cancelled or closed refund cannot be cancelled again (illegal_state,
//     not an idempotent success);
//   - order status names beyond WAITING_FOR_PAYMENT, WAITING_FOR_SENT,
//     CANCEL, and the refund body's values beyond refundId and orderId.
//
// Not simulated: 1688's "full amount while waiting for shipment" rule,
// consistency between goodsStatus and the order's shipping state, callback
// signing, seller timeouts.
package sandbox
