#pragma once
// What the example server offers: its tools, resources and prompts, as fixed JSON.

#include <string_view>

namespace sluice::example {

enum class tool_id : unsigned char {
  unknown,
  read_file,
  list_buckets,
  write_file,
  policy_generation_start,
  delete_bucket,
  put_bucket_policy,
  run_query,
  echo,
  long_job,
};

[[nodiscard]] tool_id find_tool(std::string_view name);

// The `result` object of tools/list, resources/list and prompts/list.
extern const std::string_view kToolsListResult;
extern const std::string_view kResourcesListResult;
extern const std::string_view kPromptsListResult;

struct resource {
  std::string_view uri;
  std::string_view mime_type;
  std::string_view text;
};
// nullptr when there is no such resource.
[[nodiscard]] const resource* find_resource(std::string_view uri);

struct prompt {
  std::string_view name;
  std::string_view description;
};
[[nodiscard]] const prompt* find_prompt(std::string_view name);

}  // namespace sluice::example
