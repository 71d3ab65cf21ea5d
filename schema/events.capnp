# Purser's event records: the on-disk format of the log.
#
# Every change of money or policy is one `Event`, appended to the RocksDB
# column family `events` under its 8-byte big-endian sequence number. This file
# defines the bytes of an event's payload; docs/FORMAT.md describes the record
# that wraps it (checksum, version byte, hash-chain link) and the other column
# families. Both are set in stone: golden-vector tests
# (tests/format_golden_test.cc) fail if an encoding changes.
#
# Evolution rules (Cap'n Proto's own): never renumber, never change a type,
# add fields only with higher ordinals and union members only at the end.
# A reader of an older record sees added fields as their defaults, so every
# default below is the meaning of "absent".
#
# Conventions:
# - Money is Int64 micro-USD (1 USD = 1,000,000), never floating point.
# - Times are Int64 microseconds since the Unix epoch, UTC.
# - An optional limit is Int64 with -1 meaning "no limit".
# - Ids are Text in [a-z0-9][a-z0-9._-]{0,63} for accounts; other client ids
#   are [A-Za-z0-9._:-]{1,128} (older logs may hold any printable ASCII).
# - Secrets (API key material, webhook secrets) never appear here: keys are
#   stored as SHA-256 hashes, webhook secrets outside the log.

@0xb76af0b3591d0635;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("purser::schema");

# ---------------------------------------------------------------------------
# Shared value types.

enum AccountKind {
  org @0;        # top of a customer's tree
  team @1;       # a group of agents
  agent @2;      # one agent runtime
  workflow @3;   # a pipeline or job
}

enum OnExpiry {
  inherit @0;    # not set here: the nearest ancestor that sets it decides (default release)
  release @1;    # an expired reservation releases its hold
  charge @2;     # an expired reservation charges its whole hold as spend (waste "unreconciled")
}

enum RunawayAction {
  inherit @0;    # not set here (the default is alert)
  alert @1;      # a runaway raises an alert only
  freeze @2;     # a runaway freezes the account
}

enum Outcome {
  none @0;       # not reported
  success @1;    # the model call succeeded
  error @2;      # the model call failed
  cancelled @3;  # the caller cancelled it
}

enum Role {
  reader @0;     # reads its subtree
  writer @1;     # also reserves, settles, voids, extends, records usage and revenue
  admin @2;      # also manages accounts, caps, funds and keys strictly below its root
}

enum AlertType {
  budgetThreshold @0;  # a cap's spend crossed one of its alert thresholds
  overrun @1;          # recorded spend went past a hold or a cap (aggregated per account per hour)
  anomaly @2;          # burn rate above baseline x multiplier
  runaway @3;          # runaway detection fired
}

enum CapWindow {
  none @0;       # the alert is not about a cap window
  daily @1;      # UTC day; windowInstance = days since 1970-01-01
  monthly @2;    # UTC month; windowInstance = year * 12 + (month - 1)
  lifetime @3;   # the hard limit; windowInstance = 0
}

enum ChargeKind {
  reservation @0;  # a settled (or expiry-charged) reservation
  usage @1;        # a usage charge
}

struct Tag {
  key @0 :Text;     # at most 64 bytes
  value @1 :Text;   # at most 256 bytes
}

struct Caps {
  # The complete caps of an account after a change (never a patch), so that a
  # reader needs no earlier event to know them.
  dailyLimitMicros @0 :Int64 = -1;     # spend + holds of the subtree per UTC day; -1 = none
  monthlyLimitMicros @1 :Int64 = -1;   # same per UTC month; -1 = none
  hardLimitMicros @2 :Int64 = -1;      # lifetime; -1 = none
  maxInflight @3 :Int64 = -1;          # pending reservations in the subtree; 0 = none allowed; -1 = no limit
  reservationTtlS @4 :Int64 = -1;      # default and maximum TTL; -1 = inherit (service default)
  alertThresholdsPct @5 :List(UInt8);  # ascending percentages of each limit, e.g. [50, 75, 90, 100]
  onExpiry @6 :OnExpiry;               # expiry policy; inherit = ask the parent
  runawayAction @7 :RunawayAction;     # runaway policy
  timeZone @8 :Text;                   # the zone of day/month windows; always "UTC" for now
  runawayErrorStreak @9 :Int64 = -1;   # runaway after this many consecutive error outcomes in the
                                       # subtree; 0 = rule off; -1 = inherit (default 5)
  runawayBurnMultiplierBp @10 :Int64 = -1;  # runaway when the 5-minute burn exceeds this multiple
                                       # (basis points) of the hour before; 0 = off; -1 = inherit (3x)
  runawayMinMicrosPerHour @11 :Int64 = -1;  # the burn rule needs the hour before at this rate at
                                       # least; -1 = inherit (1 USD/h)
  maxCallsPerMinute @12 :Int64 = -1;   # reservations admitted in the subtree per UTC minute; -1 = none
  maxTokensPerMinute @13 :Int64 = -1;  # tokens (estimates until settled, then real) per minute; -1 = none
  degradeAtPct @14 :Int64 = -1;        # advise "degrade" past this share of a cap; -1 = none
}

struct TokenCounts {
  # Disjoint token classes of one model call; each is priced at its own rate.
  inputTokens @0 :Int64;        # uncached input
  outputTokens @1 :Int64;       # output (excluding reasoning)
  cachedInputTokens @2 :Int64;  # input read from the provider's cache
  cacheWriteTokens @3 :Int64;   # input written to the provider's cache
  reasoningTokens @4 :Int64;    # reasoning output
}

struct PriceRates {
  # Micro-USD per million tokens. -1 = not set: cached input and cache write
  # fall back to the input rate, reasoning to the output rate.
  inputPerMtokMicros @0 :Int64;
  outputPerMtokMicros @1 :Int64;
  cachedInputPerMtokMicros @2 :Int64 = -1;
  cacheWritePerMtokMicros @3 :Int64 = -1;
  reasoningPerMtokMicros @4 :Int64 = -1;
}

struct Dimensions {
  # What a spend is broken down by in projections.
  model @0 :Text;       # empty = none
  action @1 :Text;      # tool or task; empty = none
  waste @2 :Text;       # waste category (retries, unused_context, ...); empty = none
  outcome @3 :Outcome;  # success / error / cancelled
  runId @4 :Text;       # the agent run; empty = none
  tags @5 :List(Tag);   # at most 16, sorted by key, keys unique
}

# ---------------------------------------------------------------------------
# The envelope.

struct Event {
  sequence @0 :UInt64;      # 1, 2, 3, ... without gaps; equals the record's key
  timestampUs @1 :Int64;    # service time: max(previous, wall clock), shared by a group commit
  actor @2 :Text;           # id of the API key that caused it; "system" for the service itself
  priceVersion @3 :UInt64;  # the price table version a cost in this event was computed with; 0 = none

  body :union {
    accountOpened @4 :AccountOpened;
    accountFrozen @5 :AccountFrozen;
    accountUnfrozen @6 :AccountUnfrozen;
    capsSet @7 :CapsSet;
    deposited @8 :Deposited;
    reserved @9 :Reserved;
    settled @10 :Settled;
    voided @11 :Voided;
    expired @12 :Expired;
    extended @13 :Extended;
    refunded @14 :Refunded;
    usageCharged @15 :UsageCharged;
    revenueRecorded @16 :RevenueRecorded;
    priceSet @17 :PriceSet;
    baselineSet @18 :BaselineSet;
    alertRaised @19 :AlertRaised;
    adjusted @20 :Adjusted;
    rejectionsCounted @21 :RejectionsCounted;
    apiKeyIssued @22 :ApiKeyIssued;
    apiKeyRevoked @23 :ApiKeyRevoked;
    webhookRegistered @24 :WebhookRegistered;
    webhookRemoved @25 :WebhookRemoved;
    dailyReportIngested @26 :DailyReportIngested;
    transferred @27 :Transferred;
    tagKeysIndexed @28 :TagKeysIndexed;
    webhookUpdated @29 :WebhookUpdated;
  }
}

# ---------------------------------------------------------------------------
# Event bodies. `requestHash` fields hold the XXH3-64 of the client's request
# payload, so that a retry with the same id is told apart from a conflict,
# identically after a replay.

struct AccountOpened {
  account @0 :Text;                # the new account's id
  parent @1 :Text;                 # empty for a root
  kind @2 :AccountKind;
  name @3 :Text;                   # display name, at most 256 bytes
  wallet @4 :Bool;                 # holds a balance funded by deposits
  indexedTagKeys @5 :List(Text);   # roots only: tag keys indexed in projections (at most 16)
  requestHash @6 :UInt64;
}

struct AccountFrozen {
  account @0 :Text;
  reason @1 :Text;                 # at most 256 bytes
}

struct AccountUnfrozen {
  account @0 :Text;
}

struct CapsSet {
  account @0 :Text;
  caps @1 :Caps;                   # the complete caps after the change; re-arms threshold alerts
}

struct Deposited {
  depositId @0 :Text;              # the Idempotency-Key of the deposit
  account @1 :Text;                # must hold a wallet
  amountMicros @2 :Int64;          # > 0
  reference @3 :Text;              # client reference, at most 256 bytes
  requestHash @4 :UInt64;
}

struct Reserved {
  reservationId @0 :Text;
  account @1 :Text;
  fundingAccount @2 :Text;         # the nearest wallet on the path; empty when none
  amountMicros @3 :Int64;          # the hold (0 = a lock only)
  expiresAtUs @4 :Int64;
  ttlS @5 :Int64;                  # the TTL it was given
  runId @6 :Text;
  action @7 :Text;
  tags @8 :List(Tag);
  estimateModel @9 :Text;          # set when the amount was estimated
  estimateInputTokens @10 :Int64;
  estimateMaxOutputTokens @11 :Int64;
  headroomAfterMicros @12 :Int64;  # headroom of the account right after the hold
  requestHash @13 :UInt64;
  adviceAccount @14 :Text;         # degrade advice: the account whose degradeAtPct fired; empty = none
}

struct Settled {
  reservationId @0 :Text;
  account @1 :Text;                # the reservation's account (for readers of the raw log)
  costMicros @2 :Int64;            # the recorded truth
  releasedMicros @3 :Int64;        # hold released beyond the cost (0 when late)
  overrunMicros @4 :Int64;         # cost beyond the hold (late: beyond the room at that moment)
  late @5 :Bool;                   # the reservation had expired
  expiryChargeReversedMicros @6 :Int64;  # a late settle first reverses the expiry charge
  dimensions @7 :Dimensions;       # merged: the settle's fields override the reservation's
  tokens @8 :TokenCounts;          # zero when the cost was given as an amount
  requestHash @9 :UInt64;
}

struct Voided {
  reservationId @0 :Text;
  releasedMicros @1 :Int64;
  reason @2 :Text;
}

struct Expired {
  reservationId @0 :Text;
  releasedMicros @1 :Int64;        # the hold released (release policy)
  chargedMicros @2 :Int64;         # the hold charged as spend (charge policy)
  account @3 :Text;                # the reservation's account (for readers of the raw log and
                                   # webhooks); empty in records written before it was added
}

struct Extended {
  reservationId @0 :Text;
  expiresAtUs @1 :Int64;           # the new expiry: event time + ttlS
  ttlS @2 :Int64;
}

struct Refunded {
  refundId @0 :Text;
  targetKind @1 :ChargeKind;
  targetId @2 :Text;               # reservation id or usage id
  amountMicros @3 :Int64;          # > 0; the sum of refunds never exceeds what was charged
  reason @4 :Text;
  requestHash @5 :UInt64;
}

struct UsageCharged {
  usageId @0 :Text;
  account @1 :Text;
  costMicros @2 :Int64;
  overrunMicros @3 :Int64;         # cost beyond the smallest room of the caps and funds
  dimensions @4 :Dimensions;
  tokens @5 :TokenCounts;
  requestHash @6 :UInt64;
  occurredAtUs @7 :Int64;          # imported history: when the spend happened (its day and month
                                   # count it); 0 = at this event
}

struct RevenueRecorded {
  revenueId @0 :Text;
  account @1 :Text;
  amountMicros @2 :Int64;
  category @3 :Text;
  reference @4 :Text;
  requestHash @5 :UInt64;
}

struct PriceSet {
  model @0 :Text;                  # at most 128 bytes
  rates @1 :PriceRates;
  version @2 :UInt64;              # the table version this event creates (1, 2, ...)
}

struct BaselineSet {
  account @0 :Text;
  microsPerHour @1 :Int64;         # expected burn rate
  multiplierBp @2 :Int64;          # anomaly when burn > baseline x multiplier (basis points, 20000 = 2x)
}

struct AlertRaised {
  alertId @0 :UInt64;              # equals this event's sequence number
  account @1 :Text;
  type @2 :AlertType;
  severity @3 :Text;               # info | warning | critical
  thresholdPct @4 :UInt8;          # budgetThreshold only
  window @5 :CapWindow;
  windowInstance @6 :Int64;        # see CapWindow
  limitMicros @7 :Int64;           # the cap's limit when it fired
  valueMicros @8 :Int64;           # spend (threshold) or overrun amount (overrun)
  message @9 :Text;
}

struct Adjusted {
  adjustmentId @0 :Text;
  account @1 :Text;
  amountMicros @2 :Int64;          # signed: + credits the wallet, - debits it
  reason @3 :Text;                 # required
  requestHash @4 :UInt64;
}

struct RejectionsCounted {
  account @0 :Text;
  minute @1 :Int64;                # minutes since the epoch, UTC
  code @2 :UInt32;                 # the ResultCode number (ledger/result_code.h)
  count @3 :UInt64;
}

struct ApiKeyIssued {
  keyId @0 :Text;
  account @1 :Text;                # empty = global (the service's admin)
  role @2 :Role;
  label @3 :Text;
  secretSha256 @4 :Data;           # 32 bytes: SHA-256 of the key material, never the key
  requestId @5 :Text;              # the Idempotency-Key of the create
  rotatedFrom @6 :Text;            # set on a rotation: the key this one replaces
  oldKeyValidUntilUs @7 :Int64;    # rotation: the old key works until then (grace)
  requestHash @8 :UInt64;
}

struct ApiKeyRevoked {
  keyId @0 :Text;
}

struct WebhookRegistered {
  webhookId @0 :Text;
  url @1 :Text;
  events @2 :List(Text);           # alert kinds delivered
  account @3 :Text;                # empty = every account the registering key sees
  requestId @4 :Text;              # the Idempotency-Key
  requestHash @5 :UInt64;
  secretSha256 @6 :Data;           # identifies the signing secret; the secret lives outside the log
}

struct WebhookRemoved {
  webhookId @0 :Text;
}

struct DailyReportIngested {
  # A compatibility daily report. It feeds only the compatibility reads, never
  # wallets, caps or the ledger's spend. A later report for the same account and
  # date replaces this one in projections.
  reportId @0 :Text;
  account @1 :Text;
  date @2 :Text;                   # YYYY-MM-DD
  totalTokens @3 :Int64;
  totalCostMicros @4 :Int64;
  totalRequests @5 :Int64;
  costByModel @6 :List(NamedAmount);
  costByAction @7 :List(NamedAmount);
  wasteCategories @8 :List(NamedAmount);
  efficiencyScoreMillionths @9 :Int64 = -1;  # the 0..100 score x 10^6, parsed exactly; -1 = absent
  requestHash @10 :UInt64;
  metadataJson @11 :Text;          # the report's metadata object, re-serialized, at most 64 KiB
}

struct NamedAmount {
  name @0 :Text;
  amountMicros @1 :Int64;
}

struct Transferred {
  # Funds moved between two wallets in one atomic step. Conservation law:
  # balance = deposits + adjustments + refunds + transfers in - transfers out - charges.
  transferId @0 :Text;
  fromAccount @1 :Text;            # a wallet; its balance - held covered the amount
  toAccount @2 :Text;              # a wallet
  amountMicros @3 :Int64;          # > 0
  reason @4 :Text;
  requestHash @5 :UInt64;
}

struct TagKeysIndexed {
  # Tag keys added to a root account's indexed keys (never removed); spend
  # recorded before stays as it was indexed.
  account @0 :Text;
  keys @1 :List(Text);
}

struct WebhookUpdated {
  # A webhook's complete definition after a change (never a patch).
  webhookId @0 :Text;
  url @1 :Text;
  events @2 :List(Text);
  enabled @3 :Bool = true;         # false: nothing is delivered while disabled
}
