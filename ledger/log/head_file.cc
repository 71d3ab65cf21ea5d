#include "ledger/log/head_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace purser {

namespace {

constexpr char kMagic[] = "purser-head-1";

Status SyncPath(const std::string& path, int flags) {
  int fd = open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return Status::IOError("opening " + path + ": " + std::strerror(errno));
  int synced = fsync(fd);
  int error = errno;
  close(fd);
  if (synced != 0) return Status::IOError("syncing " + path + ": " + std::strerror(error));
  return Status::Ok();
}

}  // namespace

Status WriteHeadFile(const std::string& data_dir, const HeadMark& mark) {
  const std::string path = data_dir + "/" + kHeadFileName;
  const std::string temporary = path + ".tmp";
  std::string text = std::string(kMagic) + " " + std::to_string(mark.sequence) + " " +
                     HexEncode(mark.link) + "\n";
  int fd = open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IOError("writing " + temporary + ": " + std::strerror(errno));
  ssize_t written = write(fd, text.data(), text.size());
  bool ok = written == static_cast<ssize_t>(text.size()) && fsync(fd) == 0;
  int error = errno;
  close(fd);
  if (!ok) return Status::IOError("writing " + temporary + ": " + std::strerror(error));
  if (rename(temporary.c_str(), path.c_str()) != 0) {
    return Status::IOError("renaming " + temporary + ": " + std::strerror(errno));
  }
  return SyncPath(data_dir, O_RDONLY | O_DIRECTORY);
}

Result<std::optional<HeadMark>> ReadHeadFile(const std::string& data_dir) {
  std::ifstream in(data_dir + "/" + kHeadFileName);
  if (!in) return std::optional<HeadMark>();
  std::string magic;
  std::string sequence;
  std::string link;
  in >> magic >> sequence >> link;
  HeadMark mark;
  bool digits = !sequence.empty() && sequence.size() <= 20 &&
                sequence.find_first_not_of("0123456789") == std::string::npos;
  if (magic != kMagic || !digits || !HexDecode(link, &mark.link)) {
    return Status::Corruption(std::string(kHeadFileName) + " in " + data_dir + " is damaged");
  }
  mark.sequence = std::stoull(sequence);
  return std::optional<HeadMark>(mark);
}

}  // namespace purser
