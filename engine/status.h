#pragma once
// Start-up status: ok, or a message for the operator. Not used on the data path.

#include <string>
#include <utility>

namespace sluice::engine {

class [[nodiscard]] status {
 public:
  status() = default;
  static status error(std::string message) { return status(std::move(message)); }
  [[nodiscard]] bool ok() const { return message_.empty(); }
  [[nodiscard]] const std::string& message() const { return message_; }

 private:
  explicit status(std::string m) : message_(std::move(m)) {}
  std::string message_;
};

}  // namespace sluice::engine
