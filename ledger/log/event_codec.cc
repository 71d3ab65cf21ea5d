#include "ledger/log/event_codec.h"

#include <capnp/message.h>
#include <capnp/serialize-packed.h>
#include <kj/io.h>
#include <xxhash.h>

#include <cstring>

#include "events.capnp.h"
#include "ledger/base/crypto.h"
#include "ledger/wire/capnp_values.h"

namespace purser {

namespace {

namespace s = ::purser::schema;
// The shared conversions (ledger/capnp_values.h) beside the local overloads.
using ::purser::Get;
using ::purser::Put;

constexpr size_t kScratchWords = 1024;

// Appends whatever Cap'n Proto writes to a std::string.
class StringOutputStream : public kj::OutputStream {
 public:
  explicit StringOutputStream(std::string* out) : out_(out) {}
  void write(const void* buffer, size_t size) override {
    out_->append(static_cast<const char*>(buffer), size);
  }

 private:
  std::string* out_;
};

// ---- value types (the shared ones are in ledger/capnp_values.cc) ----------

void Put(s::Dimensions::Builder b, const Dimensions& d) {
  if (!d.model.empty()) b.setModel(Text(d.model));
  if (!d.action.empty()) b.setAction(Text(d.action));
  if (!d.waste.empty()) b.setWaste(Text(d.waste));
  b.setOutcome(static_cast<s::Outcome>(d.outcome));
  if (!d.run_id.empty()) b.setRunId(Text(d.run_id));
  if (!d.tags.empty()) PutTags(b.initTags(static_cast<unsigned>(d.tags.size())), d.tags);
}

Dimensions Get(s::Dimensions::Reader r) {
  return Dimensions{Str(r.getModel()), Str(r.getAction()), Str(r.getWaste()),
                    static_cast<Outcome>(r.getOutcome()), Str(r.getRunId()),
                    GetTags(r.getTags())};
}

void PutTexts(capnp::List<capnp::Text>::Builder list, const std::vector<std::string>& texts) {
  for (unsigned i = 0; i < texts.size(); ++i) list.set(i, Text(texts[i]));
}

std::vector<std::string> GetTexts(capnp::List<capnp::Text>::Reader list) {
  std::vector<std::string> texts;
  for (auto text : list) texts.push_back(Str(text));
  return texts;
}

kj::ArrayPtr<const kj::byte> Bytes(const Sha256Digest& digest) {
  return kj::ArrayPtr<const kj::byte>(digest.data(), digest.size());
}

Sha256Digest GetDigest(capnp::Data::Reader data) {
  Sha256Digest digest{};
  if (data.size() == digest.size()) std::memcpy(digest.data(), data.begin(), digest.size());
  return digest;
}

void PutAmounts(capnp::List<s::NamedAmount>::Builder list,
                const std::vector<event::NamedAmount>& amounts) {
  for (unsigned i = 0; i < amounts.size(); ++i) {
    list[i].setName(Text(amounts[i].name));
    list[i].setAmountMicros(amounts[i].amount_micros);
  }
}

std::vector<event::NamedAmount> GetAmounts(capnp::List<s::NamedAmount>::Reader list) {
  std::vector<event::NamedAmount> amounts;
  for (auto entry : list) amounts.push_back({Str(entry.getName()), entry.getAmountMicros()});
  return amounts;
}

// ---- event bodies: encode ---------------------------------------------------

struct BodyEncoder {
  s::Event::Body::Builder body;

  void operator()(const event::AccountOpened& e) {
    auto b = body.initAccountOpened();
    b.setAccount(Text(e.account));
    b.setParent(Text(e.parent));
    b.setKind(static_cast<s::AccountKind>(e.kind));
    b.setName(Text(e.name));
    b.setWallet(e.wallet);
    PutTexts(b.initIndexedTagKeys(static_cast<unsigned>(e.indexed_tag_keys.size())),
             e.indexed_tag_keys);
    b.setRequestHash(e.request_hash);
  }
  void operator()(const event::AccountFrozen& e) {
    auto b = body.initAccountFrozen();
    b.setAccount(Text(e.account));
    b.setReason(Text(e.reason));
  }
  void operator()(const event::AccountUnfrozen& e) {
    body.initAccountUnfrozen().setAccount(Text(e.account));
  }
  void operator()(const event::CapsSet& e) {
    auto b = body.initCapsSet();
    b.setAccount(Text(e.account));
    Put(b.initCaps(), e.caps);
  }
  void operator()(const event::Deposited& e) {
    auto b = body.initDeposited();
    b.setDepositId(Text(e.deposit_id));
    b.setAccount(Text(e.account));
    b.setAmountMicros(e.amount_micros);
    b.setReference(Text(e.reference));
    b.setRequestHash(e.request_hash);
  }
  void operator()(const event::Reserved& e) {
    auto b = body.initReserved();
    b.setReservationId(Text(e.reservation_id));
    b.setAccount(Text(e.account));
    b.setFundingAccount(Text(e.funding_account));
    b.setAmountMicros(e.amount_micros);
    b.setExpiresAtUs(e.expires_at_us);
    b.setTtlS(e.ttl_s);
    if (!e.run_id.empty()) b.setRunId(Text(e.run_id));
    if (!e.action.empty()) b.setAction(Text(e.action));
    if (!e.tags.empty()) PutTags(b.initTags(static_cast<unsigned>(e.tags.size())), e.tags);
    if (!e.estimate_model.empty()) b.setEstimateModel(Text(e.estimate_model));
    b.setEstimateInputTokens(e.estimate_input_tokens);
    b.setEstimateMaxOutputTokens(e.estimate_max_output_tokens);
    b.setHeadroomAfterMicros(e.headroom_after_micros);
    b.setRequestHash(e.request_hash);
    if (!e.advice_account.empty()) b.setAdviceAccount(Text(e.advice_account));
  }
  void operator()(const event::Settled& e) {
    auto b = body.initSettled();
    b.setReservationId(Text(e.reservation_id));
    b.setAccount(Text(e.account));
    b.setCostMicros(e.cost_micros);
    b.setReleasedMicros(e.released_micros);
    b.setOverrunMicros(e.overrun_micros);
    b.setLate(e.late);
    b.setExpiryChargeReversedMicros(e.expiry_charge_reversed_micros);
    Put(b.initDimensions(), e.dimensions);
    if (!e.tokens.IsZero()) Put(b.initTokens(), e.tokens);
    b.setRequestHash(e.request_hash);
  }
  void operator()(const event::Voided& e) {
    auto b = body.initVoided();
    b.setReservationId(Text(e.reservation_id));
    b.setReleasedMicros(e.released_micros);
    b.setReason(Text(e.reason));
  }
  void operator()(const event::Expired& e) {
    auto b = body.initExpired();
    b.setReservationId(Text(e.reservation_id));
    b.setReleasedMicros(e.released_micros);
    b.setChargedMicros(e.charged_micros);
    if (!e.account.empty()) b.setAccount(Text(e.account));
  }
  void operator()(const event::Extended& e) {
    auto b = body.initExtended();
    b.setReservationId(Text(e.reservation_id));
    b.setExpiresAtUs(e.expires_at_us);
    b.setTtlS(e.ttl_s);
  }
  void operator()(const event::Refunded& e) {
    auto b = body.initRefunded();
    b.setRefundId(Text(e.refund_id));
    b.setTargetKind(static_cast<s::ChargeKind>(e.target_kind));
    b.setTargetId(Text(e.target_id));
    b.setAmountMicros(e.amount_micros);
    b.setReason(Text(e.reason));
    b.setRequestHash(e.request_hash);
  }
  void operator()(const event::UsageCharged& e) {
    auto b = body.initUsageCharged();
    b.setUsageId(Text(e.usage_id));
    b.setAccount(Text(e.account));
    b.setCostMicros(e.cost_micros);
    b.setOverrunMicros(e.overrun_micros);
    Put(b.initDimensions(), e.dimensions);
    if (!e.tokens.IsZero()) Put(b.initTokens(), e.tokens);
    b.setRequestHash(e.request_hash);
    b.setOccurredAtUs(e.occurred_at_us);
  }
  void operator()(const event::RevenueRecorded& e) {
    auto b = body.initRevenueRecorded();
    b.setRevenueId(Text(e.revenue_id));
    b.setAccount(Text(e.account));
    b.setAmountMicros(e.amount_micros);
    b.setCategory(Text(e.category));
    b.setReference(Text(e.reference));
    b.setRequestHash(e.request_hash);
  }
  void operator()(const event::PriceSet& e) {
    auto b = body.initPriceSet();
    b.setModel(Text(e.model));
    Put(b.initRates(), e.rates);
    b.setVersion(e.version);
  }
  void operator()(const event::BaselineSet& e) {
    auto b = body.initBaselineSet();
    b.setAccount(Text(e.account));
    b.setMicrosPerHour(e.micros_per_hour);
    b.setMultiplierBp(e.multiplier_bp);
  }
  void operator()(const event::AlertRaised& e) {
    auto b = body.initAlertRaised();
    b.setAlertId(e.alert_id);
    b.setAccount(Text(e.account));
    b.setType(static_cast<s::AlertType>(e.type));
    b.setSeverity(Text(e.severity));
    b.setThresholdPct(e.threshold_pct);
    b.setWindow(static_cast<s::CapWindow>(e.window));
    b.setWindowInstance(e.window_instance);
    b.setLimitMicros(e.limit_micros);
    b.setValueMicros(e.value_micros);
    b.setMessage(Text(e.message));
  }
  void operator()(const event::Adjusted& e) {
    auto b = body.initAdjusted();
    b.setAdjustmentId(Text(e.adjustment_id));
    b.setAccount(Text(e.account));
    b.setAmountMicros(e.amount_micros);
    b.setReason(Text(e.reason));
    b.setRequestHash(e.request_hash);
  }
  void operator()(const event::RejectionsCounted& e) {
    auto b = body.initRejectionsCounted();
    b.setAccount(Text(e.account));
    b.setMinute(e.minute);
    b.setCode(e.code);
    b.setCount(e.count);
  }
  void operator()(const event::ApiKeyIssued& e) {
    auto b = body.initApiKeyIssued();
    b.setKeyId(Text(e.key_id));
    b.setAccount(Text(e.account));
    b.setRole(static_cast<s::Role>(e.role));
    b.setLabel(Text(e.label));
    b.setSecretSha256(Bytes(e.secret_sha256));
    b.setRequestId(Text(e.request_id));
    b.setRotatedFrom(Text(e.rotated_from));
    b.setOldKeyValidUntilUs(e.old_key_valid_until_us);
    b.setRequestHash(e.request_hash);
  }
  void operator()(const event::ApiKeyRevoked& e) {
    body.initApiKeyRevoked().setKeyId(Text(e.key_id));
  }
  void operator()(const event::WebhookRegistered& e) {
    auto b = body.initWebhookRegistered();
    b.setWebhookId(Text(e.webhook_id));
    b.setUrl(Text(e.url));
    PutTexts(b.initEvents(static_cast<unsigned>(e.events.size())), e.events);
    b.setAccount(Text(e.account));
    b.setRequestId(Text(e.request_id));
    b.setRequestHash(e.request_hash);
    b.setSecretSha256(Bytes(e.secret_sha256));
  }
  void operator()(const event::WebhookRemoved& e) {
    body.initWebhookRemoved().setWebhookId(Text(e.webhook_id));
  }
  void operator()(const event::DailyReportIngested& e) {
    auto b = body.initDailyReportIngested();
    b.setReportId(Text(e.report_id));
    b.setAccount(Text(e.account));
    b.setDate(Text(e.date));
    b.setTotalTokens(e.total_tokens);
    b.setTotalCostMicros(e.total_cost_micros);
    b.setTotalRequests(e.total_requests);
    PutAmounts(b.initCostByModel(static_cast<unsigned>(e.cost_by_model.size())), e.cost_by_model);
    PutAmounts(b.initCostByAction(static_cast<unsigned>(e.cost_by_action.size())),
               e.cost_by_action);
    PutAmounts(b.initWasteCategories(static_cast<unsigned>(e.waste_categories.size())),
               e.waste_categories);
    b.setEfficiencyScoreMillionths(e.efficiency_score_millionths);
    b.setRequestHash(e.request_hash);
    b.setMetadataJson(Text(e.metadata_json));
  }
  void operator()(const event::Transferred& e) {
    auto b = body.initTransferred();
    b.setTransferId(Text(e.transfer_id));
    b.setFromAccount(Text(e.from_account));
    b.setToAccount(Text(e.to_account));
    b.setAmountMicros(e.amount_micros);
    b.setReason(Text(e.reason));
    b.setRequestHash(e.request_hash);
  }
  void operator()(const event::TagKeysIndexed& e) {
    auto b = body.initTagKeysIndexed();
    b.setAccount(Text(e.account));
    PutTexts(b.initKeys(static_cast<unsigned>(e.keys.size())), e.keys);
  }
  void operator()(const event::WebhookUpdated& e) {
    auto b = body.initWebhookUpdated();
    b.setWebhookId(Text(e.webhook_id));
    b.setUrl(Text(e.url));
    PutTexts(b.initEvents(static_cast<unsigned>(e.events.size())), e.events);
    b.setEnabled(e.enabled);
  }
};

// ---- event bodies: decode ---------------------------------------------------

// Long by design: one case per member of the schema's Event.Body union, so
// that the decoder reads as the table of the format (docs/FORMAT.md).
Status DecodeBody(s::Event::Body::Reader body, EventBody* out) {
  using B = s::Event::Body;
  switch (body.which()) {
    case B::ACCOUNT_OPENED: {
      auto r = body.getAccountOpened();
      *out = event::AccountOpened{Str(r.getAccount()), Str(r.getParent()),
                                  static_cast<AccountKind>(r.getKind()), Str(r.getName()),
                                  r.getWallet(), GetTexts(r.getIndexedTagKeys()),
                                  r.getRequestHash()};
      return Status::Ok();
    }
    case B::ACCOUNT_FROZEN: {
      auto r = body.getAccountFrozen();
      *out = event::AccountFrozen{Str(r.getAccount()), Str(r.getReason())};
      return Status::Ok();
    }
    case B::ACCOUNT_UNFROZEN:
      *out = event::AccountUnfrozen{Str(body.getAccountUnfrozen().getAccount())};
      return Status::Ok();
    case B::CAPS_SET: {
      auto r = body.getCapsSet();
      *out = event::CapsSet{Str(r.getAccount()), Get(r.getCaps())};
      return Status::Ok();
    }
    case B::DEPOSITED: {
      auto r = body.getDeposited();
      *out = event::Deposited{Str(r.getDepositId()), Str(r.getAccount()), r.getAmountMicros(),
                              Str(r.getReference()), r.getRequestHash()};
      return Status::Ok();
    }
    case B::RESERVED: {
      auto r = body.getReserved();
      event::Reserved e;
      e.reservation_id = Str(r.getReservationId());
      e.account = Str(r.getAccount());
      e.funding_account = Str(r.getFundingAccount());
      e.amount_micros = r.getAmountMicros();
      e.expires_at_us = r.getExpiresAtUs();
      e.ttl_s = r.getTtlS();
      e.run_id = Str(r.getRunId());
      e.action = Str(r.getAction());
      e.tags = GetTags(r.getTags());
      e.estimate_model = Str(r.getEstimateModel());
      e.estimate_input_tokens = r.getEstimateInputTokens();
      e.estimate_max_output_tokens = r.getEstimateMaxOutputTokens();
      e.headroom_after_micros = r.getHeadroomAfterMicros();
      e.request_hash = r.getRequestHash();
      e.advice_account = Str(r.getAdviceAccount());
      *out = std::move(e);
      return Status::Ok();
    }
    case B::SETTLED: {
      auto r = body.getSettled();
      event::Settled e;
      e.reservation_id = Str(r.getReservationId());
      e.account = Str(r.getAccount());
      e.cost_micros = r.getCostMicros();
      e.released_micros = r.getReleasedMicros();
      e.overrun_micros = r.getOverrunMicros();
      e.late = r.getLate();
      e.expiry_charge_reversed_micros = r.getExpiryChargeReversedMicros();
      e.dimensions = Get(r.getDimensions());
      e.tokens = Get(r.getTokens());
      e.request_hash = r.getRequestHash();
      *out = std::move(e);
      return Status::Ok();
    }
    case B::VOIDED: {
      auto r = body.getVoided();
      *out = event::Voided{Str(r.getReservationId()), r.getReleasedMicros(), Str(r.getReason())};
      return Status::Ok();
    }
    case B::EXPIRED: {
      auto r = body.getExpired();
      *out = event::Expired{Str(r.getReservationId()), r.getReleasedMicros(), r.getChargedMicros(),
                            Str(r.getAccount())};
      return Status::Ok();
    }
    case B::EXTENDED: {
      auto r = body.getExtended();
      *out = event::Extended{Str(r.getReservationId()), r.getExpiresAtUs(), r.getTtlS()};
      return Status::Ok();
    }
    case B::REFUNDED: {
      auto r = body.getRefunded();
      *out = event::Refunded{Str(r.getRefundId()), static_cast<ChargeKind>(r.getTargetKind()),
                             Str(r.getTargetId()), r.getAmountMicros(), Str(r.getReason()),
                             r.getRequestHash()};
      return Status::Ok();
    }
    case B::USAGE_CHARGED: {
      auto r = body.getUsageCharged();
      *out = event::UsageCharged{Str(r.getUsageId()), Str(r.getAccount()), r.getCostMicros(),
                                 r.getOverrunMicros(), Get(r.getDimensions()), Get(r.getTokens()),
                                 r.getRequestHash(), r.getOccurredAtUs()};
      return Status::Ok();
    }
    case B::REVENUE_RECORDED: {
      auto r = body.getRevenueRecorded();
      *out = event::RevenueRecorded{Str(r.getRevenueId()), Str(r.getAccount()),
                                    r.getAmountMicros(), Str(r.getCategory()),
                                    Str(r.getReference()), r.getRequestHash()};
      return Status::Ok();
    }
    case B::PRICE_SET: {
      auto r = body.getPriceSet();
      *out = event::PriceSet{Str(r.getModel()), Get(r.getRates()), r.getVersion()};
      return Status::Ok();
    }
    case B::BASELINE_SET: {
      auto r = body.getBaselineSet();
      *out = event::BaselineSet{Str(r.getAccount()), r.getMicrosPerHour(), r.getMultiplierBp()};
      return Status::Ok();
    }
    case B::ALERT_RAISED: {
      auto r = body.getAlertRaised();
      *out = event::AlertRaised{r.getAlertId(),
                                Str(r.getAccount()),
                                static_cast<AlertType>(r.getType()),
                                Str(r.getSeverity()),
                                r.getThresholdPct(),
                                static_cast<CapWindow>(r.getWindow()),
                                r.getWindowInstance(),
                                r.getLimitMicros(),
                                r.getValueMicros(),
                                Str(r.getMessage())};
      return Status::Ok();
    }
    case B::ADJUSTED: {
      auto r = body.getAdjusted();
      *out = event::Adjusted{Str(r.getAdjustmentId()), Str(r.getAccount()), r.getAmountMicros(),
                             Str(r.getReason()), r.getRequestHash()};
      return Status::Ok();
    }
    case B::REJECTIONS_COUNTED: {
      auto r = body.getRejectionsCounted();
      *out = event::RejectionsCounted{Str(r.getAccount()), r.getMinute(), r.getCode(),
                                      r.getCount()};
      return Status::Ok();
    }
    case B::API_KEY_ISSUED: {
      auto r = body.getApiKeyIssued();
      event::ApiKeyIssued e;
      e.key_id = Str(r.getKeyId());
      e.account = Str(r.getAccount());
      e.role = static_cast<Role>(r.getRole());
      e.label = Str(r.getLabel());
      e.secret_sha256 = GetDigest(r.getSecretSha256());
      e.request_id = Str(r.getRequestId());
      e.rotated_from = Str(r.getRotatedFrom());
      e.old_key_valid_until_us = r.getOldKeyValidUntilUs();
      e.request_hash = r.getRequestHash();
      *out = std::move(e);
      return Status::Ok();
    }
    case B::API_KEY_REVOKED:
      *out = event::ApiKeyRevoked{Str(body.getApiKeyRevoked().getKeyId())};
      return Status::Ok();
    case B::WEBHOOK_REGISTERED: {
      auto r = body.getWebhookRegistered();
      *out = event::WebhookRegistered{Str(r.getWebhookId()),    Str(r.getUrl()),
                                      GetTexts(r.getEvents()),  Str(r.getAccount()),
                                      Str(r.getRequestId()),    r.getRequestHash(),
                                      GetDigest(r.getSecretSha256())};
      return Status::Ok();
    }
    case B::WEBHOOK_REMOVED:
      *out = event::WebhookRemoved{Str(body.getWebhookRemoved().getWebhookId())};
      return Status::Ok();
    case B::DAILY_REPORT_INGESTED: {
      auto r = body.getDailyReportIngested();
      event::DailyReportIngested e;
      e.report_id = Str(r.getReportId());
      e.account = Str(r.getAccount());
      e.date = Str(r.getDate());
      e.total_tokens = r.getTotalTokens();
      e.total_cost_micros = r.getTotalCostMicros();
      e.total_requests = r.getTotalRequests();
      e.cost_by_model = GetAmounts(r.getCostByModel());
      e.cost_by_action = GetAmounts(r.getCostByAction());
      e.waste_categories = GetAmounts(r.getWasteCategories());
      e.efficiency_score_millionths = r.getEfficiencyScoreMillionths();
      e.request_hash = r.getRequestHash();
      e.metadata_json = Str(r.getMetadataJson());
      *out = std::move(e);
      return Status::Ok();
    }
    case B::TRANSFERRED: {
      auto r = body.getTransferred();
      *out = event::Transferred{Str(r.getTransferId()), Str(r.getFromAccount()),
                                Str(r.getToAccount()), r.getAmountMicros(), Str(r.getReason()),
                                r.getRequestHash()};
      return Status::Ok();
    }
    case B::WEBHOOK_UPDATED: {
      auto r = body.getWebhookUpdated();
      *out = event::WebhookUpdated{Str(r.getWebhookId()), Str(r.getUrl()), GetTexts(r.getEvents()),
                                   r.getEnabled()};
      return Status::Ok();
    }
    case B::TAG_KEYS_INDEXED: {
      auto r = body.getTagKeysIndexed();
      *out = event::TagKeysIndexed{Str(r.getAccount()), GetTexts(r.getKeys())};
      return Status::Ok();
    }
  }
  return Status::Corruption("unknown event kind " + std::to_string(static_cast<int>(body.which())));
}

void StoreLittleEndian64(uint64_t value, char* out) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(value >> (8 * i));
}

uint64_t LoadLittleEndian64(const char* in) {
  uint64_t value = 0;
  for (int i = 0; i < 8; ++i) value |= uint64_t{static_cast<uint8_t>(in[i])} << (8 * i);
  return value;
}

uint64_t RecordChecksum(uint64_t sequence, std::string_view record) {
  return XXH3_64bits_withSeed(record.data() + kRecordVersionOffset,
                              record.size() - kRecordVersionOffset, sequence);
}

}  // namespace

struct EventEncoder::Scratch {
  // The first segment of every message; zeroed again after each use, as
  // MallocMessageBuilder requires.
  std::unique_ptr<capnp::word[]> words{new capnp::word[kScratchWords]()};
};

EventEncoder::EventEncoder() : scratch_(std::make_unique<Scratch>()) {}
EventEncoder::~EventEncoder() = default;

void EventEncoder::Encode(const Event& event, std::string* payload) {
  payload->clear();
  {
    capnp::MallocMessageBuilder message(
        kj::ArrayPtr<capnp::word>(scratch_->words.get(), kScratchWords));
    auto root = message.initRoot<s::Event>();
    root.setSequence(event.sequence);
    root.setTimestampUs(event.timestamp_us);
    root.setActor(Text(event.actor));
    root.setPriceVersion(event.price_version);
    std::visit(BodyEncoder{root.initBody()}, event.body);
    StringOutputStream out(payload);
    capnp::writePackedMessage(out, message);
    auto segments = message.getSegmentsForOutput();
    size_t used = segments[0].begin() == scratch_->words.get() ? segments[0].size() : kScratchWords;
    std::memset(scratch_->words.get(), 0, used * sizeof(capnp::word));
  }
}

Status DecodePayload(std::string_view payload, Event* event) {
  try {
    kj::ArrayInputStream input(
        kj::ArrayPtr<const kj::byte>(reinterpret_cast<const kj::byte*>(payload.data()),
                                     payload.size()));
    capnp::ReaderOptions options;
    options.traversalLimitInWords = kPayloadTraversalWordsMax;
    options.nestingLimit = kPayloadNestingMax;
    capnp::PackedMessageReader message(input, options);
    auto root = message.getRoot<s::Event>();
    event->sequence = root.getSequence();
    event->timestamp_us = root.getTimestampUs();
    event->actor = Str(root.getActor());
    event->price_version = root.getPriceVersion();
    return DecodeBody(root.getBody(), &event->body);
  } catch (const kj::Exception& e) {
    return Status::Corruption(std::string("bad event payload: ") + e.getDescription().cStr());
  }
}

Sha256Digest ChainLink(const Sha256Digest& previous, uint64_t sequence, std::string_view payload) {
  std::string key = SequenceKey(sequence);
  return Sha256Of({DigestBytes(previous), key, payload});
}

void AppendRecord(uint64_t sequence, const Sha256Digest& previous_link, std::string_view payload,
                  Sha256Digest* link, std::string* out) {
  *link = ChainLink(previous_link, sequence, payload);
  size_t at = out->size();
  out->resize(at + kRecordHeaderBytes + payload.size());
  char* record = out->data() + at;
  record[kRecordVersionOffset] = static_cast<char>(kRecordVersion);
  std::memcpy(record + kRecordLinkOffset, link->data(), link->size());
  std::memcpy(record + kRecordHeaderBytes, payload.data(), payload.size());
  std::string_view view(record, kRecordHeaderBytes + payload.size());
  StoreLittleEndian64(RecordChecksum(sequence, view), record + kRecordChecksumOffset);
  // Pair assertion: the record about to be written verifies as it will be read.
  PURSER_ASSERT(LoadLittleEndian64(record) == RecordChecksum(sequence, view));
}

std::string EncodeRecord(uint64_t sequence, const Sha256Digest& previous_link,
                         std::string_view payload, Sha256Digest* link) {
  std::string record;
  AppendRecord(sequence, previous_link, payload, link, &record);
  return record;
}

Status DecodeRecord(uint64_t sequence, std::string_view record, RecordView* view) {
  if (record.size() < kRecordHeaderBytes) {
    return Status::Corruption("record " + std::to_string(sequence) + " is truncated");
  }
  if (LoadLittleEndian64(record.data()) != RecordChecksum(sequence, record)) {
    return Status::Corruption("record " + std::to_string(sequence) + " fails its checksum");
  }
  if (static_cast<uint8_t>(record[kRecordVersionOffset]) != kRecordVersion) {
    return Status::Corruption("record " + std::to_string(sequence) + " has unknown version " +
                         std::to_string(static_cast<uint8_t>(record[kRecordVersionOffset])));
  }
  std::memcpy(view->link.data(), record.data() + kRecordLinkOffset, view->link.size());
  view->payload = record.substr(kRecordHeaderBytes);
  return Status::Ok();
}

Status DecodeChainedRecord(uint64_t sequence, std::string_view record, const Sha256Digest& previous_link,
                           Event* event, Sha256Digest* link) {
  RecordView view;
  if (Status status = DecodeRecord(sequence, record, &view); !status.ok()) return status;
  if (ChainLink(previous_link, sequence, view.payload) != view.link) {
    return Status::Corruption("event " + std::to_string(sequence) + " breaks the hash chain");
  }
  if (Status status = DecodePayload(view.payload, event); !status.ok()) {
    return Status::Corruption("event " + std::to_string(sequence) + ": " + status.message());
  }
  if (event->sequence != sequence) {
    return Status::Corruption("event " + std::to_string(sequence) + " carries sequence " +
                              std::to_string(event->sequence));
  }
  *link = view.link;
  return Status::Ok();
}

std::string SequenceKey(uint64_t sequence) {
  std::string key(8, '\0');
  for (int i = 0; i < 8; ++i) key[i] = static_cast<char>(sequence >> (56 - 8 * i));
  return key;
}

uint64_t SequenceFromKey(std::string_view key) {
  uint64_t sequence = 0;
  for (size_t i = 0; i < 8 && i < key.size(); ++i) {
    sequence = sequence << 8 | static_cast<uint8_t>(key[i]);
  }
  return sequence;
}

}  // namespace purser
