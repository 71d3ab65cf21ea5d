#include "ops/admin.h"

#include <filesystem>
#include <system_error>

namespace purser {

namespace {
constexpr size_t kPathBytesMax = 4096;
constexpr size_t kPathComponentBytesMax = 255;
}  // namespace

std::string CheckCheckpointDir(const std::string& dir) {
  if (dir.empty()) return "dir is required";
  if (dir.size() > kPathBytesMax) return "dir is longer than 4096 bytes";
  if (dir.find('\0') != std::string::npos) return "dir must not contain NUL bytes";
  if (dir.front() != '/') return "dir must be an absolute path";
  size_t start = 1;
  while (start <= dir.size()) {
    size_t slash = dir.find('/', start);
    if (slash == std::string::npos) slash = dir.size();
    std::string_view component(dir.data() + start, slash - start);
    if (component == "..") return "dir must not contain .. components";
    if (component.size() > kPathComponentBytesMax) {
      return "a component of dir is longer than 255 bytes";
    }
    start = slash + 1;
  }
  return {};
}

Status CreateCheckpointAt(Ledger* sequencer, const std::string& dir) {
  if (std::string problem = CheckCheckpointDir(dir); !problem.empty()) return Status::InvalidArgument(problem);
  std::error_code error;
  std::filesystem::path path(dir);
  if (std::filesystem::exists(path, error) || error) {
    if (error) return Status::IOError("dir cannot be checked: " + error.message());
    return Status::InvalidArgument(dir + " already exists");
  }
  std::filesystem::path parent = path.parent_path();
  if (!std::filesystem::is_directory(parent, error) || error) {
    return Status::InvalidArgument("the parent directory of " + dir + " does not exist");
  }
  try {
    return sequencer->CopyTo(dir);
  } catch (const std::exception& e) {
    return Status::IOError(std::string("checkpoint failed: ") + e.what());
  }
}

}  // namespace purser
