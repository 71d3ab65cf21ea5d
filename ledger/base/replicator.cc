#include "ledger/base/replicator.h"

namespace purser {

std::string FormatLeaseValue(const LeaderView& leader) {
  return "node=" + leader.node + " rpc=" + leader.rpc + " http=" + leader.http;
}

LeaderView ParseLeaseValue(std::string_view value) {
  LeaderView view;
  while (!value.empty()) {
    size_t space = value.find(' ');
    std::string_view field = value.substr(0, space);
    value = space == std::string_view::npos ? std::string_view() : value.substr(space + 1);
    size_t equals = field.find('=');
    if (equals == std::string_view::npos) continue;
    std::string_view name = field.substr(0, equals);
    std::string text(field.substr(equals + 1));
    if (name == "node") view.node = std::move(text);
    if (name == "rpc") view.rpc = std::move(text);
    if (name == "http") view.http = std::move(text);
  }
  return view;
}

}  // namespace purser
