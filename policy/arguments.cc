#include "policy/arguments.h"

#include <re2/re2.h>
#include <simdjson.h>

#include <cstring>

namespace sluice::policy {

uint32_t arg_trie::add(const arg_path& path) {
  uint32_t node = kRoot;
  for (const std::string& seg : path.segments) {
    const uint32_t next = child(node, seg);
    if (next != kNoSlot) {
      node = next;
      continue;
    }
    const auto fresh = static_cast<uint32_t>(nodes_.size());
    nodes_.emplace_back();  // may reallocate: index, do not hold references
    nodes_[node].children.emplace(seg, fresh);
    if (nodes_[node].children.size() <= kFew) nodes_[node].few.emplace_back(seg, fresh);
    node = fresh;
  }
  if (nodes_[node].slot == kNoSlot) nodes_[node].slot = slot_count_++;
  return nodes_[node].slot;
}

namespace {

// Code points in a valid UTF-8 string: bytes that are not continuation bytes.
size_t utf8_length(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s)
    n += (c & 0xC0) != 0x80;
  return n;
}

bool scalar_equal(const literal& lit, const arg_value& v) {
  switch (lit.type) {
    case literal::kind::null:
      return v.type == arg_value::kind::null;
    case literal::kind::boolean:
      return v.type == arg_value::kind::boolean && v.boolean == lit.boolean;
    case literal::kind::number:
      return v.type == arg_value::kind::number && v.number == lit.number;
    case literal::kind::string:
      return v.type == arg_value::kind::string && v.text == lit.string;
    case literal::kind::list:
      return false;
  }
  return false;
}

bool in_list(const literal& list, const arg_value& v) {
  for (const literal& item : list.items)
    if (scalar_equal(item, v)) return true;
  return false;
}

// `contains` on an array: does an element equal the literal? Parses the array's raw JSON
// (already validated by the reader) with a DOM parser. Rare path; allocates.
bool array_contains(const arg_value& v, const literal& lit) {
  thread_local simdjson::dom::parser parser;
  simdjson::padded_string padded(v.text);
  simdjson::dom::array arr;
  if (parser.parse(padded).get_array().get(arr) != simdjson::SUCCESS) return false;
  for (simdjson::dom::element el : arr) {
    arg_value item;
    switch (el.type()) {
      case simdjson::dom::element_type::STRING:
        item.type = arg_value::kind::string;
        item.text = el.get_string().value_unsafe();
        break;
      case simdjson::dom::element_type::INT64:
      case simdjson::dom::element_type::UINT64:
      case simdjson::dom::element_type::DOUBLE:
        item.type = arg_value::kind::number;
        item.number = el.get_double().value_unsafe();
        break;
      case simdjson::dom::element_type::BOOL:
        item.type = arg_value::kind::boolean;
        item.boolean = el.get_bool().value_unsafe();
        break;
      case simdjson::dom::element_type::NULL_VALUE:
        item.type = arg_value::kind::null;
        break;
      default:
        continue;
    }
    if (scalar_equal(lit, item)) return true;
  }
  return false;
}

}  // namespace

bool check_holds(const compiled_check& c, const arg_value& v, bool& fail_closed) {
  fail_closed = false;
  const bool present = v.type != arg_value::kind::absent;
  switch (c.op) {
    case check_op::exists:
      return present;
    case check_op::not_exists:
      return !present;
    default:
      break;
  }
  if (!present) return false;  // an absent value satisfies no other op
  switch (c.op) {
    case check_op::eq:
      return scalar_equal(c.value, v);
    case check_op::neq:
      return !scalar_equal(c.value, v);
    case check_op::in:
      return in_list(c.value, v);
    case check_op::not_in:
      return !in_list(c.value, v);
    case check_op::lt:
    case check_op::lte:
    case check_op::gt:
    case check_op::gte: {
      if (v.type != arg_value::kind::number) {
        fail_closed = true;
        return false;
      }
      const double a = v.number, b = c.value.number;
      if (c.op == check_op::lt) return a < b;
      if (c.op == check_op::lte) return a <= b;
      if (c.op == check_op::gt) return a > b;
      return a >= b;
    }
    case check_op::regex:
      if (v.type != arg_value::kind::string) {
        fail_closed = true;
        return false;
      }
      if (!c.range.may_match(v.text)) return false;  // RE2 would say no, at a fraction of the cost
      return RE2::PartialMatch(re2::StringPiece(v.text.data(), v.text.size()), *c.re);
    case check_op::max_length:
      if (v.type == arg_value::kind::string) return utf8_length(v.text) <= c.value.number;
      if (v.type == arg_value::kind::array) return v.count <= c.value.number;
      fail_closed = true;
      return false;
    case check_op::contains:
      if (v.type == arg_value::kind::string && c.value.type == literal::kind::string)
        return v.text.find(c.value.string) != std::string_view::npos;
      if (v.type == arg_value::kind::array) return array_contains(v, c.value);
      fail_closed = true;
      return false;
    default:
      return false;
  }
}

std::string_view canonical_key(const arg_value& v, char* scratch, std::string& buf) {
  switch (v.type) {
    case arg_value::kind::absent:
      return "a";
    case arg_value::kind::null:
      return "n";
    case arg_value::kind::boolean:
      return v.boolean ? "t" : "f";
    case arg_value::kind::number: {
      double d = v.number == 0 ? 0.0 : v.number;  // -0 and 0 are one key
      scratch[0] = 'd';
      std::memcpy(scratch + 1, &d, sizeof d);
      return {scratch, 1 + sizeof d};
    }
    case arg_value::kind::string:
      buf.assign(1, 's');
      buf.append(v.text);  // reuses buf's capacity: no allocation once warm
      return buf;
    case arg_value::kind::array:
      // Arrays and objects have many spellings of one value (spacing, key order, number
      // forms): rather than let a client re-spell its way past a limit, every array counts
      // as one key and every object as another. Over-counting, never under-counting.
      return "A";
    case arg_value::kind::object:
      return "O";
  }
  return "a";
}

}  // namespace sluice::policy
