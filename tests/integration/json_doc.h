#pragma once
// A parsed JSON answer for assertions: JSON Pointer lookups that return a marker value
// ("<missing>", -1, 0, false) instead of failing, so a test prints what it got. Test-only;
// simdjson's DOM API.

#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::testing {

class json {
 public:
  explicit json(std::string_view text) : text_(text) {
    ok_ = parser_.parse(text_).get(root_) == simdjson::SUCCESS;
  }
  json(const json&) = delete;
  json& operator=(const json&) = delete;

  [[nodiscard]] bool ok() const { return ok_; }
  [[nodiscard]] bool has(std::string_view ptr) {
    return ok_ && root_.at_pointer(ptr).error() == simdjson::SUCCESS;
  }
  [[nodiscard]] std::string str(std::string_view ptr) {
    std::string_view s;
    if (!ok_ || root_.at_pointer(ptr).get_string().get(s) != simdjson::SUCCESS) return "<missing>";
    return std::string(s);
  }
  [[nodiscard]] int64_t num(std::string_view ptr) {
    int64_t v;
    if (!ok_ || root_.at_pointer(ptr).get_int64().get(v) != simdjson::SUCCESS) return -1;
    return v;
  }
  [[nodiscard]] double dbl(std::string_view ptr) {
    double v;
    if (!ok_ || root_.at_pointer(ptr).get_double().get(v) != simdjson::SUCCESS) return -1;
    return v;
  }
  [[nodiscard]] bool boolean(std::string_view ptr) {
    bool v = false;
    return ok_ && root_.at_pointer(ptr).get_bool().get(v) == simdjson::SUCCESS && v;
  }
  [[nodiscard]] size_t size(std::string_view ptr) {
    simdjson::dom::array a;
    if (!ok_ || root_.at_pointer(ptr).get_array().get(a) != simdjson::SUCCESS) return 0;
    return a.size();
  }
  [[nodiscard]] std::string raw(std::string_view ptr) {
    simdjson::dom::element e;
    if (!ok_ || root_.at_pointer(ptr).get(e) != simdjson::SUCCESS) return "<missing>";
    return simdjson::minify(e);
  }

 private:
  std::string text_;
  simdjson::dom::parser parser_;
  simdjson::dom::element root_;
  bool ok_ = false;
};

}  // namespace sluice::testing
