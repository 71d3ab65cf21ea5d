#include "ledger/base/flags.h"

#include <algorithm>
#include <charconv>

namespace purser {

Flags::Flags(int argc, char** argv, int first, const std::vector<std::string>& switches) {
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.size() < 3 || arg.compare(0, 2, "--") != 0) {
      positional_.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    size_t eq = name.find('=');
    if (eq != std::string::npos) {
      values_[name.substr(0, eq)] = name.substr(eq + 1);
    } else if (std::find(switches.begin(), switches.end(), name) != switches.end()) {
      values_[name] = "true";
    } else if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) {
      values_[name] = argv[++i];
    } else {
      // A value never starts with "--": "--id --ttl 5" is a missing value,
      // not an id of "--ttl".
      if (error_.empty()) error_ = "--" + name + " needs a value";
    }
  }
}

std::string Flags::Get(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

std::optional<int64_t> Flags::GetInt(const std::string& name) {
  auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  int64_t value = 0;
  const std::string& text = it->second;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) {
    error_ = "--" + name + " must be an integer";
    return std::nullopt;
  }
  return value;
}

std::vector<std::string> Flags::Unknown(const std::vector<std::string>& known) const {
  std::vector<std::string> unknown;
  for (const auto& [name, value] : values_) {
    if (std::find(known.begin(), known.end(), name) == known.end()) unknown.push_back(name);
  }
  return unknown;
}

std::vector<std::string> CommaList(const std::string& text) {
  std::vector<std::string> items;
  for (size_t start = 0; !text.empty() && start <= text.size();) {
    size_t comma = text.find(',', start);
    items.push_back(text.substr(start, comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return items;
}

}  // namespace purser
