#pragma once
// A temporary file for a test: created under /tmp with the given content, removed when the
// object goes. Header-only, so unit tests use it without linking the integration harness.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace sluice::testing {

class temp_file {
 public:
  explicit temp_file(std::string_view content) {
    char tmpl[] = "/tmp/sluice-test-XXXXXX";
    const int fd = ::mkstemp(tmpl);
    if (fd < 0) {
      ADD_FAILURE() << "mkstemp: " << std::strerror(errno);
      return;
    }
    ::close(fd);
    path_ = tmpl;
    write(content);
  }
  temp_file(const temp_file&) = delete;
  temp_file& operator=(const temp_file&) = delete;
  ~temp_file() { remove(); }

  // "" when the file could not be created (the test has failed then).
  [[nodiscard]] const std::string& path() const { return path_; }

  // Replaces the content.
  void write(std::string_view content) const {
    const int fd = ::open(path_.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
    const bool ok = fd >= 0 && ::write(fd, content.data(), content.size()) ==
                                   static_cast<ssize_t>(content.size());
    if (!ok) ADD_FAILURE() << "cannot write " << path_ << ": " << std::strerror(errno);
    if (fd >= 0) ::close(fd);
  }

  // Removes the file now (path() still names it), for tests of a file that went away.
  void remove() const {
    if (!path_.empty()) ::unlink(path_.c_str());
  }

 private:
  std::string path_;
};

}  // namespace sluice::testing
