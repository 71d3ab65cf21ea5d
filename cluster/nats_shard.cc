#include "cluster/nats_shard.h"

#include <nats/nats.h>

#include <algorithm>
#include <cstring>

#include "ledger/log/event_codec.h"

namespace purser {

namespace {

constexpr char kLeaseBucket[] = "purser_lease";
constexpr char kShardMapBucket[] = "purser_shards";
constexpr char kKindHeader[] = "Purser-Kind";
constexpr char kFirstHeader[] = "Purser-First";
constexpr char kCountHeader[] = "Purser-Count";
constexpr char kNodeHeader[] = "Purser-Node";

Status NatsError(const std::string& what, natsStatus status) {
  std::string message = what + ": " + natsStatus_GetText(status);
  natsStatus last = NATS_OK;
  const char* text = nats_GetLastError(&last);
  if (text != nullptr && *text != '\0') message += std::string(" (") + text + ")";
  return Status::IOError(message);
}

std::string Header(natsMsg* message, const char* key) {
  const char* value = nullptr;
  if (natsMsgHeader_Get(message, key, &value) != NATS_OK || value == nullptr) return "";
  return value;
}

// A decimal header value; nullopt when absent or not a number.
std::optional<uint64_t> NumberHeader(natsMsg* message, const char* key) {
  std::string text = Header(message, key);
  if (text.empty() || text.size() > 19) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  return value;
}

// NATS could not be asked (as opposed to answering no).
bool Unreachable(natsStatus status) {
  return status == NATS_TIMEOUT || status == NATS_CONNECTION_CLOSED || status == NATS_NO_SERVER ||
         status == NATS_NO_RESPONDERS || status == NATS_CONNECTION_DISCONNECTED ||
         status == NATS_STALE_CONNECTION || status == NATS_IO_ERROR;
}

struct MessageDeleter {
  void operator()(natsMsg* message) const { natsMsg_Destroy(message); }
};
using MessagePtr = std::unique_ptr<natsMsg, MessageDeleter>;


// Binds the key-value bucket `name`, creating it (one value per key, file
// storage, entries lapsing after `ttl_ms`, 0 = never) if no node has yet.
Status OpenBucket(jsCtx* js, const char* name, int64_t ttl_ms, int replicas, kvStore** bucket) {
  natsStatus s = js_KeyValue(bucket, js, name);
  if (s == NATS_NOT_FOUND) {
    kvConfig config;
    kvConfig_Init(&config);
    config.Bucket = name;
    config.History = 1;
    config.TTL = ttl_ms * 1'000'000;  // nanoseconds in the 3.4 C client
    config.Replicas = replicas;
    config.StorageType = js_FileStorage;
    s = js_CreateKeyValue(bucket, js, &config);
    if (s != NATS_OK) {
      Status created = NatsError(std::string("creating the bucket ") + name, s);
      s = js_KeyValue(bucket, js, name);  // another node won the race
      if (s != NATS_OK) return created;
    }
  }
  if (s != NATS_OK) return NatsError(std::string("the bucket ") + name, s);
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<NatsShard>> NatsShard::Connect(const ClusterOptions& options) {
  if (options.servers.empty()) return Status::InvalidArgument("no NATS server given");
  std::unique_ptr<NatsShard> shard(new NatsShard(options));
  shard->stream_ = "PURSER_" + options.shard;
  shard->subject_ = "purser." + options.shard + ".log";
  natsOptions* nats_options = nullptr;
  natsStatus s = natsOptions_Create(&nats_options);
  std::vector<const char*> servers;
  for (const std::string& server : options.servers) servers.push_back(server.c_str());
  if (s == NATS_OK) s = natsOptions_SetServers(nats_options, servers.data(), static_cast<int>(servers.size()));
  if (s == NATS_OK) s = natsOptions_SetTimeout(nats_options, 2'000);
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(nats_options, -1);  // forever
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(nats_options, 100);
  if (s == NATS_OK) s = natsConnection_Connect(&shard->connection_, nats_options);
  natsOptions_Destroy(nats_options);
  if (s != NATS_OK) return NatsError("connecting to NATS", s);
  jsOptions js_options;
  jsOptions_Init(&js_options);
  // JetStream API requests (stream info, consumers, the lease) fail fast and
  // are retried by the caller: one sent while the cluster elects its leaders
  // is lost, not queued. Publishes wait publish_timeout_ms (Publish).
  js_options.Wait = 2'000;
  if (s = natsConnection_JetStream(&shard->js_, shard->connection_, &js_options); s != NATS_OK) {
    return NatsError("JetStream", s);
  }
  // The stream: created once, by whichever node comes first.
  jsStreamInfo* info = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  s = js_GetStreamInfo(&info, shard->js_, shard->stream_.c_str(), nullptr, &code);
  if (s == NATS_NOT_FOUND || code == JSStreamNotFoundErr) {
    jsStreamConfig config;
    jsStreamConfig_Init(&config);
    config.Name = shard->stream_.c_str();
    const char* subjects[] = {shard->subject_.c_str()};
    config.Subjects = subjects;
    config.SubjectsLen = 1;
    config.Storage = js_FileStorage;
    config.Replicas = options.replicas;
    config.MaxMsgSize = 8 << 20;
    s = js_AddStream(&info, shard->js_, &config, nullptr, &code);
    if (s != NATS_OK && code == JSStreamNameExistErr) s = NATS_OK;  // another node won the race
  }
  if (info != nullptr) jsStreamInfo_Destroy(info);
  if (s != NATS_OK) return NatsError("creating the stream " + shard->stream_, s);
  if (options.lease_ms == 0) return shard;  // a reader of the stream only
  // The shard map: a tenant's root account -> its shard, no history, kept forever.
  if (Status opened = OpenBucket(shard->js_, kShardMapBucket, 0, options.replicas, &shard->map_); !opened.ok()) {
    return opened;
  }
  if (options.map_only) return shard;
  // The lease bucket: one value per shard, no history; a lease lapses when
  // its value is older than the TTL.
  if (Status opened = OpenBucket(shard->js_, kLeaseBucket, options.lease_ms, options.replicas, &shard->kv_);
      !opened.ok()) {
    return opened;
  }
  // The bucket's TTL is the lease: every node must agree with it, or one
  // renewing less often than it lapses would lose its lease in a loop.
  kvStatus* status = nullptr;
  if (s = kvStore_Status(&status, shard->kv_); s != NATS_OK) return NatsError("the lease bucket", s);
  const int64_t ttl_ms = kvStatus_TTL(status) / 1'000'000;
  kvStatus_Destroy(status);
  if (ttl_ms != options.lease_ms) {
    return Status::InvalidArgument("the lease bucket " + std::string(kLeaseBucket) + " keeps a lease " +
                                   std::to_string(ttl_ms) + " ms but --lease-ms is " +
                                   std::to_string(options.lease_ms) +
                                   ": start every node of the cluster with the same --lease-ms");
  }
  return shard;
}

NatsShard::~NatsShard() {
  if (kv_ != nullptr) kvStore_Destroy(kv_);
  if (map_ != nullptr) kvStore_Destroy(map_);
  if (js_ != nullptr) jsCtx_Destroy(js_);
  if (connection_ != nullptr) {
    natsConnection_Close(connection_);
    natsConnection_Destroy(connection_);
  }
}

Result<uint64_t> NatsShard::LastPosition() {
  jsStreamInfo* info = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&info, js_, stream_.c_str(), nullptr, &code);
  if (s != NATS_OK) return NatsError("reading the stream's state", s);
  uint64_t last = info->State.LastSeq;
  jsStreamInfo_Destroy(info);
  return last;
}

Result<uint64_t> NatsShard::Publish(natsMsg* message, uint64_t expected) {
  jsPubOptions options;
  jsPubOptions_Init(&options);
  options.MaxWait = options_.publish_timeout_ms;
  // The C client treats an expected sequence of 0 as none: on an empty
  // stream, "no message on the subject" says the same (it has one subject).
  if (expected == 0) {
    options.ExpectNoMessage = true;
  } else {
    options.ExpectLastSeq = expected;
  }
  jsPubAck* ack = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s = js_PublishMsg(&ack, js_, message, &options, &code);
  if (s != NATS_OK) {
    if (code == JSStreamWrongLastSequenceErr) {
      return Status::Error("fenced: the stream moved past " + std::to_string(expected) +
                           " (another node leads)");
    }
    return NatsError("publishing to " + stream_, s);
  }
  uint64_t position = ack->Sequence;
  jsPubAck_Destroy(ack);
  return position;
}

Result<uint64_t> NatsShard::PublishTerm(uint64_t expected) {
  natsMsg* raw = nullptr;
  if (natsStatus s = natsMsg_Create(&raw, subject_.c_str(), nullptr, nullptr, 0); s != NATS_OK) {
    return NatsError("a message", s);
  }
  MessagePtr message(raw);
  natsMsgHeader_Set(raw, kKindHeader, "term");
  natsMsgHeader_Set(raw, kNodeHeader, options_.node.c_str());
  return Publish(raw, expected);
}

Result<uint64_t> NatsShard::PublishRecords(uint64_t expected, uint64_t first, uint64_t count,
                                           std::string_view records) {
  natsMsg* raw = nullptr;
  natsStatus s = natsMsg_Create(&raw, subject_.c_str(), nullptr, records.data(),
                                static_cast<int>(records.size()));
  if (s != NATS_OK) return NatsError("a message", s);
  MessagePtr message(raw);
  natsMsgHeader_Set(raw, kKindHeader, "records");
  natsMsgHeader_Set(raw, kFirstHeader, std::to_string(first).c_str());
  natsMsgHeader_Set(raw, kCountHeader, std::to_string(count).c_str());
  return Publish(raw, expected);
}

size_t NatsShard::max_body_bytes() const {
  int64_t payload = natsConnection_GetMaxPayload(connection_);
  return static_cast<size_t>(std::clamp<int64_t>(payload - 4096, 64 << 10, 8 << 20));
}

Result<uint64_t> NatsShard::PublishWrite(uint64_t expected, uint64_t first, uint64_t count,
                                         std::string_view records) {
  const size_t limit = max_body_bytes();
  while (records.size() > limit) {
    // As many whole records as fit (at least one).
    size_t cut = 0;
    uint64_t taken = 0;
    while (cut + kSegmentLengthBytes <= records.size() && taken < count) {
      const uint32_t length = SegmentRecordLength(records.substr(cut));
      if (taken > 0 && cut + kSegmentLengthBytes + length > limit) break;
      cut += kSegmentLengthBytes + length;
      ++taken;
    }
    Result<uint64_t> part = PublishRecords(expected, first, taken, records.substr(0, cut));
    if (!part.ok()) return part;
    expected = *part;
    first += taken;
    count -= taken;
    records.remove_prefix(cut);
  }
  return PublishRecords(expected, first, count, records);
}

Result<bool> NatsShard::TryLead(const std::string& value) {
  if (kv_ == nullptr) return Status::InvalidArgument("connected without the lease (lease_ms 0)");
  uint64_t revision = 0;
  natsStatus s = kvStore_Create(&revision, kv_, options_.shard.c_str(), value.data(),
                                static_cast<int>(value.size()));
  if (s == NATS_OK) {
    lease_revision_ = revision;
    return true;
  }
  if (Unreachable(s)) return NatsError("taking the lease", s);
  return false;  // someone holds it: the key exists
}

Result<bool> NatsShard::Renew(const std::string& value) {
  if (lease_revision_ == 0) return false;
  uint64_t revision = 0;
  natsStatus s = kvStore_Update(&revision, kv_, options_.shard.c_str(), value.data(),
                                static_cast<int>(value.size()), lease_revision_);
  if (s == NATS_OK) {
    lease_revision_ = revision;
    return true;
  }
  if (Unreachable(s)) return NatsError("renewing the lease", s);
  lease_revision_ = 0;  // the revision moved: it lapsed (and someone may hold it)
  return false;
}

void NatsShard::Resign() {
  if (lease_revision_ == 0 || kv_ == nullptr) return;
  // Only our own lease: a delete expecting our revision would be ideal; the
  // 2.9 C client has none, so a lapsed lease is left to its new holder.
  kvEntry* entry = nullptr;
  if (kvStore_Get(&entry, kv_, options_.shard.c_str()) == NATS_OK) {
    if (kvEntry_Revision(entry) == lease_revision_) kvStore_Delete(kv_, options_.shard.c_str());
    kvEntry_Destroy(entry);
  }
  lease_revision_ = 0;
}

Result<std::string> NatsShard::Leader() { return LeaderOf(options_.shard); }

Result<std::string> NatsShard::LeaderOf(const std::string& shard) {
  if (kv_ == nullptr) return Status::InvalidArgument("connected without the lease (lease_ms 0)");
  kvEntry* entry = nullptr;
  natsStatus s = kvStore_Get(&entry, kv_, shard.c_str());
  if (s == NATS_NOT_FOUND) return std::string();
  if (s != NATS_OK) return NatsError("reading the lease", s);
  std::string value = kvEntry_ValueString(entry);
  kvEntry_Destroy(entry);
  return value;
}

namespace {

// A tenant's key in the shard map. Account ids may hold '.', which NATS
// reads as a token separator (and refuses at either end or doubled): it is
// written as '=', which no account id holds.
std::string MapKey(std::string tenant) {
  std::replace(tenant.begin(), tenant.end(), '.', '=');
  return tenant;
}
std::string TenantOfKey(std::string key) {
  std::replace(key.begin(), key.end(), '=', '.');
  return key;
}

}  // namespace

Status NatsShard::Assign(const std::string& tenant, const std::string& shard, std::string* holder) {
  if (map_ == nullptr) return Status::InvalidArgument("connected without the shard map (lease_ms 0)");
  uint64_t revision = 0;
  const std::string key = MapKey(tenant);
  natsStatus s = kvStore_Create(&revision, map_, key.c_str(), shard.data(), static_cast<int>(shard.size()));
  if (holder != nullptr) *holder = shard;
  if (s == NATS_OK) return Status::Ok();
  if (Unreachable(s)) return NatsError("assigning " + tenant, s);
  kvEntry* entry = nullptr;
  if (s = kvStore_Get(&entry, map_, key.c_str()); s != NATS_OK) return NatsError("reading the shard map", s);
  std::string held = kvEntry_ValueString(entry);
  kvEntry_Destroy(entry);
  if (holder != nullptr) *holder = held;
  if (held == shard) return Status::Ok();
  return Status::InvalidArgument("tenant " + tenant + " is on shard " + held +
                                 " already (moving a tenant between shards is not built)");
}

NatsShard::MapWatch::~MapWatch() {
  if (watcher_ != nullptr) {
    kvWatcher_Stop(watcher_);
    kvWatcher_Destroy(watcher_);
  }
}

Result<std::optional<NatsShard::MapChange>> NatsShard::MapWatch::Next(int64_t timeout_ms) {
  kvEntry* entry = nullptr;
  natsStatus s = kvWatcher_Next(&entry, watcher_, timeout_ms);
  if (s == NATS_TIMEOUT || (s == NATS_OK && entry == nullptr)) return std::optional<MapChange>();
  if (s != NATS_OK) return NatsError("watching the shard map", s);
  MapChange change;
  change.tenant = TenantOfKey(kvEntry_Key(entry));
  change.removed = kvEntry_Operation(entry) != kvOp_Put;
  if (!change.removed) change.shard = kvEntry_ValueString(entry);
  kvEntry_Destroy(entry);
  return std::optional<MapChange>(std::move(change));
}

Result<std::unique_ptr<NatsShard::MapWatch>> NatsShard::WatchMap() {
  if (map_ == nullptr) return Status::InvalidArgument("connected without the shard map (lease_ms 0)");
  auto watch = std::make_unique<MapWatch>();
  natsStatus s = kvStore_WatchAll(&watch->watcher_, map_, nullptr);
  if (s != NATS_OK) return NatsError("watching the shard map", s);
  return watch;
}

NatsShard::Subscription::~Subscription() {
  if (sub_ != nullptr) {
    natsSubscription_Unsubscribe(sub_);
    natsSubscription_Destroy(sub_);
  }
}

Result<std::unique_ptr<NatsShard::Subscription>> NatsShard::Subscribe(uint64_t from) {
  jsSubOptions options;
  jsSubOptions_Init(&options);
  options.Stream = stream_.c_str();
  options.Ordered = true;
  options.Config.DeliverPolicy = from <= 1 ? js_DeliverAll : js_DeliverByStartSequence;
  if (from > 1) options.Config.OptStartSeq = from;
  auto subscription = std::unique_ptr<Subscription>(new Subscription());
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s = js_SubscribeSync(&subscription->sub_, js_, subject_.c_str(), nullptr, &options, &code);
  if (s != NATS_OK) return NatsError("following " + stream_, s);
  return subscription;
}

Result<std::optional<StreamMessage>> NatsShard::Subscription::Next(int64_t timeout_ms) {
  natsMsg* raw = nullptr;
  natsStatus s = natsSubscription_NextMsg(&raw, sub_, timeout_ms);
  if (s == NATS_TIMEOUT) return std::optional<StreamMessage>();
  if (s != NATS_OK) return NatsError("reading the stream", s);
  MessagePtr message(raw);
  jsMsgMetaData* meta = nullptr;
  if (s = natsMsg_GetMetaData(&meta, raw); s != NATS_OK) return NatsError("a message's position", s);
  StreamMessage out;
  out.position = meta->Sequence.Stream;
  jsMsgMetaData_Destroy(meta);
  std::string kind = Header(raw, kKindHeader);
  if (kind == "term") {
    out.kind = StreamMessage::Kind::kTerm;
    out.node = Header(raw, kNodeHeader);
  } else if (kind == "records") {
    out.kind = StreamMessage::Kind::kRecords;
    std::optional<uint64_t> first = NumberHeader(raw, kFirstHeader);
    std::optional<uint64_t> count = NumberHeader(raw, kCountHeader);
    if (!first || !count || *first == 0) {
      return Status::Corruption("stream message " + std::to_string(out.position) +
                                ": no valid Purser-First or Purser-Count header");
    }
    out.first = *first;
    out.count = *count;
    out.body.assign(natsMsg_GetData(raw), static_cast<size_t>(natsMsg_GetDataLength(raw)));
  } else {
    return Status::Corruption("stream message " + std::to_string(out.position) +
                              ": unknown kind '" + kind + "'");
  }
  return std::optional<StreamMessage>(std::move(out));
}

}  // namespace purser
