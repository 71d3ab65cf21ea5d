// Command-line flags for the tools: "--name value", "--name=value" and bare
// "--switch", plus positional arguments. Small on purpose: each tool documents
// its own flags in its usage text.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace purser {

class Flags {
 public:
  // Parses argv[first..argc). `switches` are flags that take no value.
  Flags(int argc, char** argv, int first, const std::vector<std::string>& switches = {});

  bool Has(const std::string& name) const { return values_.contains(name); }
  std::string Get(const std::string& name, const std::string& fallback = "") const;
  // nullopt when absent; sets error() when present but not an integer.
  std::optional<int64_t> GetInt(const std::string& name);
  const std::vector<std::string>& positional() const { return positional_; }
  // Flags given that are not in `known`: each is an error for the tool.
  std::vector<std::string> Unknown(const std::vector<std::string>& known) const;
  const std::string& error() const { return error_; }

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
  std::string error_;
};

// "a,b,c" -> {"a", "b", "c"}; "" -> {}; empty items are kept ("a,,b").
std::vector<std::string> CommaList(const std::string& text);

}  // namespace purser
