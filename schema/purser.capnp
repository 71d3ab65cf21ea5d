# Purser's RPC contract: what gateways and agent runtimes call on the hot path
# of every LLM call, and what the CLI and the load tool use.
#
# Design
# ------
# Capabilities, not flags. A client connects, gets the unauthenticated `Gate`
# as the bootstrap capability, and trades an API key for a `Session`. The
# session holds a `Reader` for every key and a `Ledger` (a Reader that can
# also write) only for writer and admin keys: a reader's capability simply has
# no method that writes. The key behind a capability is checked again on every
# call, so revoking a key stops capabilities handed out before the revocation.
#
# One contract for one command and for many. `call` carries one command and
# `submit` up to 8,192 (kBatchCommandsMax); both go through the same sequencer
# and group commit, and a batch's results come back in order, one each.
# Batching is how a gateway reaches millions of commands per second: the cost
# of a call is per message, not per command (../shared/PLATFORM.md).
#
# Results are typed. Every result carries a numbered ResultCode (the same
# numbers as ledger/result_code.h, never renumbered) and, on success, a typed
# body; nothing needs parsing from strings. A business refusal (a cap, funds,
# a conflict) is a result, not an RPC exception; exceptions mean the call
# itself failed (bad capability, message over the limits, server stopping).
#
# Limits. The server reads messages with a traversal limit and a nesting limit,
# refuses batches over 8,192 commands and bounds the bytes of calls in flight
# per connection (RpcSystem flow limit). Money is Int64 micro-USD; -1 means
# "no limit" in caps and "absent" in optional amounts as noted per field.

@0x90181cd5c2083dc7;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("purser::rpc");

using E = import "events.capnp";

enum ResultCode {
  ok @0;
  invalidArgument @1;
  notFound @2;
  alreadyExists @3;
  idempotencyConflict @4;
  permissionDenied @5;
  accountFrozen @6;
  insufficientFunds @7;
  dailyCapExceeded @8;
  monthlyCapExceeded @9;
  hardLimitExceeded @10;
  inflightLimitReached @11;
  reservationNotPending @12;
  refundExceedsCharged @13;
  unauthenticated @14;
  unavailable @15;       # not ready, stopping, or the command queue is full: retry later
  notImplemented @16;
  rateLimited @17;       # a rate cap on the path: retry after Result.retryAfterS seconds
  notLeader @18;         # cluster mode: another node or shard serves this (the message says which)
}

# ---------------------------------------------------------------------------
# Capabilities.

interface Gate {
  # The bootstrap capability: the only thing an unauthenticated client can do.
  authenticate @0 (apiKey :Text) -> (session :Session);
  # Throws (an RPC failure, not a result) when the key is not valid, and on
  # a cluster-mode standby, with a description that begins "not_leader"
  # (docs/CLUSTER.md): ask `leader` where to go.

  leader @1 (tenant :Text) -> (leader :Leader);
  # Who serves the shard that holds `tenant` (a root account; empty: this
  # node's shard); no key needed. The client library asks it to route.
}

struct Leader {
  leading @0 :Bool;        # this node serves (always, outside cluster mode)
  node @1 :Text;           # the leader's name as its lease says; empty when no
  rpc @2 :Text;            # node holds the lease (a failover is under way)
  http @3 :Text;
  shard @4 :Text;          # the shard (empty outside cluster mode)
}

struct Session {
  keyId @0 :Text;          # the key's id (never its secret)
  account @1 :Text;        # the root of its scope; empty for the global admin
  role @2 :E.Role;
  reader @3 :Reader;       # every session
  ledger @4 :Ledger;       # writer and admin sessions only; null for a reader
}

interface Reader {
  query @0 (query :Query) -> (result :Result);
  queries @1 (queries :List(Query)) -> (results :List(Result));
  # At most 8,192 queries; results in order.

  subscribe @2 (subscriber :Subscriber, account :Text) -> (subscription :Subscription);
  # Streams alerts and freezes of `account`'s subtree (empty: the key's whole
  # scope) to `subscriber` as they become durable. Drop `subscription` (or
  # disconnect) to stop.

  ping @3 () -> ();
  # Answered at once, without touching the ledger: the cost of a round trip
  # alone (purser-bench compares commands against it).

  # Audit proofs (SPEC section 9; API.md's GET /v1/admin/checkpoints/latest,
  # /v1/proofs/inclusion and /v1/admin/proofs/consistency).
  latestCheckpoint @4 () -> (result :Result, note :Text);
  # The newest signed checkpoint of the log's Merkle tree, as a signed note.
  # Global admin only.
  inclusionProof @5 (seq :UInt64, treeSize :UInt64) -> (result :Result, proof :InclusionProof);
  # Event `seq` in the tree of `treeSize` events (0: the newest signed
  # checkpoint's). Any key that sees the event's account.
  consistencyProof @6 (from :UInt64, to :UInt64) -> (result :Result, proof :ConsistencyProof);
  # The tree of `to` events extends the tree of `from`. Global admin only.
}

struct InclusionProof {
  seq @0 :UInt64;
  leafIndex @1 :UInt64;          # seq - 1
  treeSize @2 :UInt64;
  leafHash @3 :Data;             # SHA-256(0x00 || record)
  path @4 :List(Data);           # RFC 9162 audit path, leaf to root
  record @5 :Data;               # the event's record as stored
}

struct ConsistencyProof {
  from @0 :UInt64;
  to @1 :UInt64;
  path @2 :List(Data);
}

interface Ledger extends(Reader) {
  call @0 (command :Command) -> (result :Result);
  submit @1 (commands :List(Command)) -> (results :List(Result));
  # Up to 8,192 commands, applied in order and independently, in one or more
  # group commits; every result is durable when the call returns.

  checkpoint @2 (dir :Text) -> (result :Result);
  # Global admin only: a consistent RocksDB checkpoint of the database in
  # `dir` (which must not exist), for audits with purser-replay.

  webhookDeliveries @3 (webhookId :Text, limit :UInt32, state :Text)
      -> (result :Result, deliveries :List(Delivery));
  # The delivery records of a webhook the key manages, newest first; `state`
  # filters (empty: all). At most `limit` (0: 100; at most 10,000).

  redeliver @4 (webhookId :Text, eventId :Text) -> (result :Result);
  # Sends an event to the webhook again (a dead delivery, or any recorded one).
}

interface Subscriber {
  notify @0 (notice :Notice) -> ();
}

interface Subscription {
  # Holds a subscription open; it ends when this capability is dropped.
}

struct Notice {
  sequence @0 :UInt64;      # of the event
  timestampUs @1 :Int64;
  kind @2 :Text;            # budget_threshold | overrun | anomaly | runaway | account_frozen |
                            # account_unfrozen | reservation_expired (webhooks carry the same set)
  account @3 :Text;
  alertId @4 :UInt64;       # 0 for freezes
  thresholdPct @5 :UInt8;
  window @6 :E.CapWindow;
  limitMicros @7 :Int64;
  valueMicros @8 :Int64;
  message @9 :Text;         # alert message or freeze reason
}

# ---------------------------------------------------------------------------
# Commands and queries.

struct Command {
  union {
    openAccount @0 :OpenAccount;
    setCaps @1 :SetCaps;
    freeze @2 :Freeze;
    unfreeze @3 :Text;            # the account
    deposit @4 :Deposit;
    reserve @5 :Reserve;
    settle @6 :Settle;
    void @7 :VoidReservation;
    extend @8 :Extend;
    usage @9 :Usage;
    refund @10 :Refund;
    revenue @11 :Revenue;
    adjust @12 :Adjust;
    setPrice @13 :SetPrice;
    setBaseline @14 :SetBaseline;
    issueKey @15 :IssueKey;
    revokeKey @16 :Text;          # the key id
    registerWebhook @17 :RegisterWebhook;
    removeWebhook @18 :Text;      # the webhook id
    query @19 :Query;             # a read inside a batch, ordered with its writes
    transfer @20 :Transfer;
    indexTagKeys @21 :IndexTagKeys;
    updateWebhook @22 :UpdateWebhook;
  }
}

struct OpenAccount {
  id @0 :Text;                    # [a-z0-9][a-z0-9._-]{0,63}
  parent @1 :Text;                # empty: a root (global admin only)
  kind @2 :E.AccountKind;
  name @3 :Text;
  wallet @4 :Bool;
  indexedTagKeys @5 :List(Text);  # roots only, at most 16
}

struct CapsField {
  # One field of a caps update.
  union {
    keep @0 :Void;                # leave as it is
    set @1 :Int64;
    remove @2 :Void;              # no limit / default
  }
}

struct SetCaps {
  account @0 :Text;
  dailyLimitMicros @1 :CapsField;
  monthlyLimitMicros @2 :CapsField;
  hardLimitMicros @3 :CapsField;
  maxInflight @4 :CapsField;
  reservationTtlS @5 :CapsField;
  alertThresholdsPct @6 :List(UInt8);   # replaces the thresholds when setThresholds
  setThresholds @7 :Bool;
  removeThresholds @8 :Bool;            # back to the default 50, 75, 90, 100
  onExpiry @9 :E.OnExpiry;              # inherit = keep
  removeOnExpiry @10 :Bool;
  runawayAction @11 :E.RunawayAction;   # inherit = keep
  removeRunawayAction @12 :Bool;
  runawayErrorStreak @13 :CapsField;    # 0 = the rule off; remove = inherit (default 5)
  runawayBurnMultiplierBp @14 :CapsField;  # basis points (30000 = 3x); 0 = off
  runawayMinMicrosPerHour @15 :CapsField;
  maxCallsPerMinute @16 :CapsField;     # rate caps over the subtree per UTC minute
  maxTokensPerMinute @17 :CapsField;
  degradeAtPct @18 :CapsField;          # 1..100: advice "degrade" past this share of a cap
}

struct Freeze {
  account @0 :Text;
  reason @1 :Text;
}

struct Deposit {
  depositId @0 :Text;             # idempotency key
  account @1 :Text;
  amountMicros @2 :Int64;
  reference @3 :Text;
}

struct Estimate {
  model @0 :Text;
  inputTokens @1 :Int64;
  maxOutputTokens @2 :Int64;
}

struct UsageTokens {
  model @0 :Text;
  tokens @1 :E.TokenCounts;
}

struct Reserve {
  reservationId @0 :Text;
  account @1 :Text;
  amount :union {
    micros @2 :Int64;
    estimate @3 :Estimate;
  }
  ttlS @4 :Int64;                 # 0: the effective default
  runId @5 :Text;
  action @6 :Text;
  tags @7 :List(E.Tag);
}

struct Settle {
  reservationId @0 :Text;
  cost :union {
    micros @1 :Int64;
    usage @2 :UsageTokens;
  }
  action @3 :Text;                # overrides the reservation's when hasAction
  hasAction @4 :Bool;
  waste @5 :Text;
  hasWaste @6 :Bool;
  outcome @7 :E.Outcome;
  tags @8 :List(E.Tag);           # merged into the reservation's, key by key
}

struct VoidReservation {
  reservationId @0 :Text;
  reason @1 :Text;
}

struct Extend {
  reservationId @0 :Text;
  ttlS @1 :Int64;
}

struct Usage {
  usageId @0 :Text;
  account @1 :Text;
  cost :union {
    micros @2 :Int64;
    usage @3 :UsageTokens;
  }
  action @4 :Text;
  waste @5 :Text;
  outcome @6 :E.Outcome;
  runId @7 :Text;
  tags @8 :List(E.Tag);
  occurredAtUs @9 :Int64;         # imported history (within 35 days); 0 = now
}

struct Transfer {
  transferId @0 :Text;            # idempotency id
  from @1 :Text;                  # a wallet in the key's subtree (its root's included)
  to @2 :Text;                    # a wallet strictly below the key's root
  amountMicros @3 :Int64;
  reason @4 :Text;
}

struct UpdateWebhook {
  webhookId @0 :Text;
  url @1 :Text;                   # when setUrl (the server checks where it resolves)
  setUrl @2 :Bool;
  events @3 :List(Text);          # when setEvents
  setEvents @4 :Bool;
  enabled @5 :Bool;               # when setEnabled
  setEnabled @6 :Bool;
}

struct IndexTagKeys {
  account @0 :Text;               # a root account (global admin)
  keys @1 :List(Text);            # added; never removed
}

struct Refund {
  refundId @0 :Text;
  targetKind @1 :E.ChargeKind;
  targetId @2 :Text;              # a reservation id or a usage id
  amountMicros @3 :Int64;
  reason @4 :Text;
}

struct Revenue {
  revenueId @0 :Text;
  account @1 :Text;
  amountMicros @2 :Int64;
  category @3 :Text;
  reference @4 :Text;
}

struct Adjust {
  adjustmentId @0 :Text;
  account @1 :Text;
  amountMicros @2 :Int64;         # signed
  reason @3 :Text;
}

struct SetPrice {
  model @0 :Text;
  rates @1 :E.PriceRates;
}

struct SetBaseline {
  account @0 :Text;
  microsPerHour @1 :Int64;
  multiplierBp @2 :Int64;         # 20000 = 2x
}

struct IssueKey {
  requestId @0 :Text;             # idempotency key (may be empty)
  account @1 :Text;               # empty: a global key (global admin only)
  role @2 :E.Role;
  label @3 :Text;
  rotateOf @4 :Text;              # a rotation of this key id; it keeps working graceS
  graceS @5 :Int64;
}

struct RegisterWebhook {
  requestId @0 :Text;
  url @1 :Text;
  events @2 :List(Text);
  account @3 :Text;
  secret @4 :Text;                # the signing secret; kept out of the log
}

struct Query {
  union {
    getAccount @0 :Text;
    listAccounts @1 :Text;        # children of this account; empty: the key's root(s)
    getBalance @2 :Text;
    getReservation @3 :Text;
    listReservations @4 :ListReservations;
    getSpend @5 :GetSpend;
    listAlerts @6 :ListAlerts;
    listPrices @7 :Void;
    estimate @8 :UsageTokens;
    listKeys @9 :Void;
    listWebhooks @10 :Void;
    getPnl @11 :DateRange;
    chainHead @12 :Void;          # global admin
    digest @13 :Void;             # global admin
    whoAmI @14 :Void;
    burnRate @15 :WindowQuery;    # account = the subtree's root
    activeRuns @16 :WindowQuery;  # account = the parent (empty: the key's scope)
    getBaseline @17 :Text;
    anomalies @18 :Text;          # the parent (empty: the key's scope)
    efficiency @19 :DateRange;
    trends @20 :TrendsQuery;
    leaderboard @21 :LeaderboardQuery;
    stats @22 :Void;
  }
}

struct WindowQuery {
  account @0 :Text;
  windowS @1 :Int64;              # a multiple of 60 in 60..86400
  limit @2 :UInt32;               # activeRuns only; 0 = 100
}

struct TrendsQuery {
  account @0 :Text;
  days @1 :Int64;                 # 1..366 (the HTTP API offers 7, 30, 90)
}

enum LeaderboardMetric {
  spend @0;
  efficiency @1;
  waste @2;
}

struct LeaderboardQuery {
  parent @0 :Text;                # empty: the key's scope
  metric @1 :LeaderboardMetric;
  days @2 :Int64;
  limit @3 :UInt32;               # 0 = 100
}

struct ListReservations {
  account @0 :Text;
  status @1 :Text;                # pending | settled | voided | expired; empty: all
  limit @2 :UInt32;
}

enum GroupBy {
  none @0;
  model @1;
  action @2;
  waste @3;
  child @4;
  day @5;
  tag @6;
  outcome @7;
  run @8;
}

struct GetSpend {
  account @0 :Text;
  fromDay @1 :Text;               # YYYY-MM-DD, inclusive
  toDay @2 :Text;
  groupBy @3 :GroupBy;
  tagKey @4 :Text;                # for groupBy = tag
}

struct ListAlerts {
  account @0 :Text;
  sinceUs @1 :Int64;
  type @2 :E.AlertType;           # when hasType
  hasType @3 :Bool;
  newestFirst @4 :Bool;           # past the bound the newest are kept
}

struct DateRange {
  account @0 :Text;
  fromDay @1 :Text;
  toDay @2 :Text;
}

# ---------------------------------------------------------------------------
# Results.

struct Result {
  code @0 :ResultCode;
  created @1 :Bool;               # a new fact was recorded (not a query or an idempotent repeat)
  message @2 :Text;               # for people; never parse it
  account @3 :Text;               # the account whose cap or wallet refused
  limitMicros @4 :Int64 = -1;     # the refusing cap's limit
  availableMicros @5 :Int64 = -1; # the room that was left
  body :union {
    none @6 :Void;
    account @7 :AccountView;
    accounts @8 :List(AccountView);
    caps @9 :E.Caps;
    balance @10 :BalanceView;
    reserve @11 :ReserveResult;
    settle @12 :SettleResult;
    releasedMicros @13 :Int64;    # void
    expiresAtUs @14 :Int64;       # extend
    usage @15 :UsageResult;
    id @16 :IdResult;             # refund, revenue, webhook, expiry count
    walletBalance @17 :BalanceResult;  # deposit, adjustment
    key @18 :KeyResult;
    reservation @19 :ReservationView;
    reservations @20 :List(ReservationView);
    spend @21 :SpendReport;
    alerts @22 :List(AlertView);
    prices @23 :PriceList;
    cost @24 :CostResult;
    keys @25 :List(KeyView);
    webhooks @26 :List(WebhookView);
    pnl @27 :PnlView;
    chainHead @28 :ChainHead;
    digest @29 :DigestView;
    principal @30 :Principal;
    transfer @32 :TransferResult;
    indexedTagKeys @33 :List(Text);
    burnRate @34 :BurnRateView;
    runs @35 :List(RunView);
    baseline @36 :BaselineView;
    anomalies @37 :List(AnomalyView);
    efficiency @38 :EfficiencyView;
    trends @39 :List(TrendDay);
    leaderboard @40 :List(LeaderboardEntry);
    stats @41 :StatsView;
  }
  retryAfterS @31 :Int64;         # rateLimited: seconds to the next minute
  truncated @42 :Bool;            # alerts: more matched than the bound
}

struct TransferResult {
  transferId @0 :Text;
  fromBalanceMicros @1 :Int64;
  toBalanceMicros @2 :Int64;
}

struct BurnRateView {
  account @0 :Text;
  windowS @1 :Int64;
  microsPerHour @2 :Int64;
  spendMicros @3 :Int64;
  calls @4 :Int64;
  baselineMicrosPerHour @5 :Int64;  # 0: no baseline
  ratioPct @6 :Int64;
}

struct RunView {
  runId @0 :Text;
  account @1 :Text;
  microsPerHour @2 :Int64;
  spendMicros @3 :Int64;
  calls @4 :Int64;
  firstAtUs @5 :Int64;
  lastAtUs @6 :Int64;
}

struct BaselineView {
  account @0 :Text;
  microsPerHour @1 :Int64;
  multiplierBp @2 :Int64;
}

struct AnomalyView {
  account @0 :Text;
  microsPerHour @1 :Int64;
  baselineMicrosPerHour @2 :Int64;
  thresholdMicrosPerHour @3 :Int64;
  ratioPct @4 :Int64;
  sinceUs @5 :Int64;
}

struct EfficiencyFigures {
  model @0 :Text;                 # empty for the account's totals
  scoreBp @1 :Int64;              # 100 x (1 - waste/total), in basis points
  totalMicros @2 :Int64;
  wasteMicros @3 :Int64;
  cacheHitRateBp @4 :Int64;
  cacheSavingsMicros @5 :Int64;
  cacheWriteExtraMicros @6 :Int64;
  cacheNetSavingsMicros @7 :Int64;
}

struct Recommendation {
  rule @0 :Text;
  message @1 :Text;
  valueBp @2 :Int64;              # the share that triggered it, in basis points
}

struct EfficiencyView {
  account @0 :Text;
  fromDay @1 :Text;
  toDay @2 :Text;
  total @3 :EfficiencyFigures;
  byModel @4 :List(EfficiencyFigures);
  recommendations @5 :List(Recommendation);
}

struct NamedCost {
  name @0 :Text;
  costMicros @1 :Int64;
}

struct TrendDay {
  date @0 :Text;                  # YYYY-MM-DD
  costMicros @1 :Int64;
  calls @2 :Int64;
  tokens @3 :Int64;
  byModel @4 :List(NamedCost);
  byAction @5 :List(NamedCost);
  byWaste @6 :List(NamedCost);
}

struct LeaderboardEntry {
  account @0 :Text;
  value @1 :Int64;                # micro-USD for spend and waste; basis points for efficiency
  spendMicros @2 :Int64;
}

struct StatsView {
  accounts @0 :Int64;
  activeAccountsToday @1 :Int64;
  spendTodayMicros @2 :Int64;
  spendMonthMicros @3 :Int64;
  callsToday @4 :Int64;
  reservationsPending @5 :Int64;
  eventsTotal @6 :Int64;
  alertsActive @7 :Int64;
  runsActive @8 :Int64;
  frozenAccounts @9 :Int64;
}

struct BalanceView {
  account @0 :Text;
  fundingAccount @1 :Text;
  balanceMicros @2 :Int64;
  heldMicros @3 :Int64;
  availableMicros @4 :Int64;
  ownHeldMicros @5 :Int64;
  spentTodayMicros @6 :Int64;
  spentMonthMicros @7 :Int64;
  spentTotalMicros @8 :Int64;
  dailyLimitMicros @9 :Int64;     # -1: none
  monthlyLimitMicros @10 :Int64;
  hardLimitMicros @11 :Int64;
  headroomMicros @12 :Int64;
  inflight @13 :Int64;
  frozen @14 :Bool;
}

struct AccountView {
  id @0 :Text;
  parent @1 :Text;
  kind @2 :E.AccountKind;
  name @3 :Text;
  wallet @4 :Bool;
  frozen @5 :Bool;
  caps @6 :E.Caps;
  balance @7 :BalanceView;
  indexedTagKeys @8 :List(Text);
  frozenReason @9 :Text;
}

struct ReserveResult {
  reservationId @0 :Text;
  account @1 :Text;
  amountMicros @2 :Int64;
  expiresAtUs @3 :Int64;
  headroomAfterMicros @4 :Int64;
  seq @5 :UInt64;                 # the Reserved event: a receipt for proofs
  adviceAccount @6 :Text;         # set when the degrade advice fired: switch to a cheaper model
}

struct SettleResult {
  reservationId @0 :Text;
  costMicros @1 :Int64;
  releasedMicros @2 :Int64;
  overrunMicros @3 :Int64;
  late @4 :Bool;
  seq @5 :UInt64;                 # the Settled event
}

struct UsageResult {
  usageId @0 :Text;
  costMicros @1 :Int64;
  overrunMicros @2 :Int64;
  seq @3 :UInt64;                 # the UsageCharged event
}

struct IdResult {
  id @0 :Text;
  amountMicros @1 :Int64;
}

struct BalanceResult {
  id @0 :Text;
  balanceMicros @1 :Int64;
}

struct KeyResult {
  keyId @0 :Text;
  account @1 :Text;
  role @2 :E.Role;
  apiKey @3 :Text;                # the secret, shown once (empty on an idempotent repeat)
}

struct ReservationView {
  reservationId @0 :Text;
  account @1 :Text;
  amountMicros @2 :Int64;
  status @3 :Text;                # pending | settled | voided | expired
  costMicros @4 :Int64;
  createdAtUs @5 :Int64;
  expiresAtUs @6 :Int64;
  runId @7 :Text;
  action @8 :Text;
}

struct SpendGroup {
  key @0 :Text;
  costMicros @1 :Int64;
  calls @2 :Int64;
  inputTokens @3 :Int64;
  outputTokens @4 :Int64;
  cachedInputTokens @5 :Int64;
  cacheWriteTokens @6 :Int64;
  reasoningTokens @7 :Int64;
}

struct SpendReport {
  account @0 :Text;
  fromDay @1 :Text;
  toDay @2 :Text;
  totalMicros @3 :Int64;
  calls @4 :Int64;
  groups @5 :List(SpendGroup);    # cost descending, then key ascending
}

struct AlertView {
  id @0 :UInt64;
  account @1 :Text;
  type @2 :E.AlertType;
  severity @3 :Text;
  thresholdPct @4 :UInt8;
  window @5 :E.CapWindow;
  limitMicros @6 :Int64;
  valueMicros @7 :Int64;
  count @8 :Int64;
  message @9 :Text;
  createdAtUs @10 :Int64;
}

struct PriceView {
  model @0 :Text;
  rates @1 :E.PriceRates;
  version @2 :UInt64;
}

struct PriceList {
  version @0 :UInt64;
  prices @1 :List(PriceView);
}

struct CostResult {
  costMicros @0 :Int64;
  priceVersion @1 :UInt64;
}

struct KeyView {
  keyId @0 :Text;
  account @1 :Text;
  role @2 :E.Role;
  label @3 :Text;
  revoked @4 :Bool;
  validUntilUs @5 :Int64;
  createdAtUs @6 :Int64;
}

struct WebhookView {
  webhookId @0 :Text;
  url @1 :Text;
  events @2 :List(Text);
  account @3 :Text;
  createdAtUs @4 :Int64;
  enabled @5 :Bool = true;
}

struct Delivery {
  # One event's delivery to one webhook (SPEC section 8).
  eventId @0 :Text;               # evt_<seq>_<n>: stable across retries, for deduplication
  type @1 :Text;                  # budget_threshold | overrun | ... | reservation_expired
  state @2 :Text;                 # pending | delivered | retrying | dead
  attempts @3 :UInt32;
  lastStatusCode @4 :UInt32;      # 0: none (no answer)
  lastError @5 :Text;
  lastAttemptAtUs @6 :Int64;      # 0: none yet
  nextAttemptAtUs @7 :Int64;      # 0: none (delivered or dead)
  attemptLog @8 :List(DeliveryAttempt);  # the newest attempts (up to 32), oldest first
}

struct DeliveryAttempt {
  atUs @0 :Int64;
  statusCode @1 :UInt32;          # 0: no HTTP answer
  error @2 :Text;
}

struct PnlView {
  account @0 :Text;
  revenueMicros @1 :Int64;
  costMicros @2 :Int64;
  profitMicros @3 :Int64;
  marginBp @4 :Int64;
  hasMargin @5 :Bool;             # false without revenue
}

struct ChainHead {
  sequence @0 :UInt64;
  hash @1 :Data;                  # 32 bytes
}

struct DigestView {
  sequence @0 :UInt64;
  digest @1 :Data;                # 32 bytes
}

struct Principal {
  keyId @0 :Text;
  account @1 :Text;
  role @2 :E.Role;
}
