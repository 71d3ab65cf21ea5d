#include "cluster/shard_directory.h"

#include <chrono>
#include <set>

namespace purser {

ShardDirectory::ShardDirectory(NatsShard* shard, std::function<void(const std::string&)> warn)
    : shard_(shard), warn_(std::move(warn)), thread_([this] { Loop(); }) {}

ShardDirectory::~ShardDirectory() {
  {
    std::lock_guard lock(mutex_);
    done_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

bool ShardDirectory::WaitReady(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return wake_.wait_for(lock, timeout, [this] { return ready_ || done_; }) && ready_;
}

std::optional<std::string> ShardDirectory::ShardOf(std::string_view tenant) const {
  std::lock_guard lock(mutex_);
  auto it = tenants_.find(tenant);
  if (it == tenants_.end()) return std::nullopt;
  return it->second;
}

LeaderView ShardDirectory::Route(std::string_view tenant) const {
  const ClusterOptions& own = shard_->options();
  std::lock_guard lock(mutex_);
  std::string shard = own.shard;
  if (!tenant.empty()) {
    if (auto it = tenants_.find(tenant); it != tenants_.end()) shard = it->second;
  }
  LeaderView view;
  if (auto it = leases_.find(shard); it != leases_.end()) view = it->second;
  view.shard = shard;
  return view;
}

void ShardDirectory::Claim(const std::string& tenant) {
  {
    std::lock_guard lock(mutex_);
    tenants_[tenant] = shard_->options().shard;
    claims_.push_back(tenant);
  }
  wake_.notify_all();
}

void ShardDirectory::ClaimWaiting() {
  std::vector<std::string> claims;
  {
    std::lock_guard lock(mutex_);
    claims.swap(claims_);
  }
  for (size_t i = 0; i < claims.size(); ++i) {
    std::string holder;
    Status status = shard_->Assign(claims[i], shard_->options().shard, &holder);
    if (status.ok()) continue;
    if (status.code() == StatusCode::kInvalidArgument) {  // another shard holds it: it opened it too
      warn_("cluster: tenant " + claims[i] + " was opened on this shard, but " + status.message());
      std::lock_guard lock(mutex_);
      tenants_[claims[i]] = holder;  // Claim() wrote ours; the map's word stands
      continue;
    }
    std::lock_guard lock(mutex_);  // NATS unreachable: again later
    claims_.insert(claims_.end(), claims.begin() + static_cast<ptrdiff_t>(i), claims.end());
    return;
  }
}

// Reads the lease of every shard the map names, and of this node's.
void ShardDirectory::RefreshLeases() {
  std::set<std::string> shards{shard_->options().shard};
  {
    std::lock_guard lock(mutex_);
    for (const auto& [tenant, shard] : tenants_) shards.insert(shard);
  }
  for (const std::string& shard : shards) {
    Result<std::string> value = shard_->LeaderOf(shard);
    if (!value.ok()) continue;  // NATS unreachable: the last one read stands
    std::lock_guard lock(mutex_);
    leases_[shard] = ParseLeaseValue(*value);
  }
}

void ShardDirectory::Loop() {
  using Clock = std::chrono::steady_clock;
  std::unique_ptr<NatsShard::MapWatch> watch;
  auto next_leases = Clock::now();
  std::unique_lock lock(mutex_);
  while (!done_) {
    lock.unlock();
    if (!watch) {
      Result<std::unique_ptr<NatsShard::MapWatch>> started = shard_->WatchMap();
      if (started.ok()) watch = std::move(*started);
    }
    // The map first, whole (a wait without news, or the watch's end-of-
    // history marker, says it is in), then the leases and claims.
    Result<std::optional<NatsShard::MapChange>> change =
        watch ? watch->Next(ready_ ? 250 : 2'000) : Result<std::optional<NatsShard::MapChange>>(std::nullopt);
    if (ready_) {
      ClaimWaiting();
      if (Clock::now() >= next_leases) {
        RefreshLeases();
        next_leases = Clock::now() + std::chrono::milliseconds(500);
      }
    }
    lock.lock();
    if (!change.ok()) {
      watch.reset();  // started again after a pause
    } else if (change->has_value()) {
      const NatsShard::MapChange& c = **change;
      if (c.removed) {
        tenants_.erase(c.tenant);
      } else {
        tenants_[c.tenant] = c.shard;
      }
      continue;  // drain the changes before waiting
    } else if (watch && !ready_) {
      ready_ = true;
      lock.unlock();
      RefreshLeases();  // before anyone asks
      lock.lock();
      wake_.notify_all();
      continue;
    }
    if (!watch || !change.ok()) wake_.wait_for(lock, std::chrono::milliseconds(250), [this] { return done_; });
  }
}

}  // namespace purser
