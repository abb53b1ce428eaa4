#include "tools/example_server/catalog.h"

#include <array>

namespace sluice::example {

namespace {

struct named_tool {
  std::string_view name;
  tool_id id;
};

constexpr std::array kTools = {
    named_tool{"read_file", tool_id::read_file},
    named_tool{"list_buckets", tool_id::list_buckets},
    named_tool{"write_file", tool_id::write_file},
    named_tool{"policy_generation_start", tool_id::policy_generation_start},
    named_tool{"delete_bucket", tool_id::delete_bucket},
    named_tool{"put_bucket_policy", tool_id::put_bucket_policy},
    named_tool{"run_query", tool_id::run_query},
    named_tool{"echo", tool_id::echo},
    named_tool{"long_job", tool_id::long_job},
};

constexpr std::array kResources = {
    resource{"file:///workspace/README.md", "text/markdown",
             "# Workspace\n\nFiles the example agent may read.\n"},
    resource{"s3://reports/q3-summary.csv", "text/csv",
             "region,revenue\neu-west-1,1200\nus-east-1,3400\n"},
    resource{"config://policies/default", "application/json",
             R"({"version":1,"default":"deny","tools":{"read_file":"allow"}})"},
};

constexpr std::array kPrompts = {
    prompt{"summarize_bucket", "Summarize what a storage bucket holds and who can reach it."},
    prompt{"review_policy", "Review a bucket policy for overly broad grants."},
};

}  // namespace

tool_id find_tool(std::string_view name) {
  for (const named_tool& t : kTools) {
    if (t.name == name) return t.id;
  }
  return tool_id::unknown;
}

const resource* find_resource(std::string_view uri) {
  for (const resource& r : kResources) {
    if (r.uri == uri) return &r;
  }
  return nullptr;
}

const prompt* find_prompt(std::string_view name) {
  for (const prompt& p : kPrompts) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

// clang-format off
const std::string_view kToolsListResult = R"({"tools":[)"
  R"({"name":"read_file","title":"Read file","description":"Reads a file from the workspace or a storage bucket.",)"
    R"("inputSchema":{"type":"object","properties":{)"
      R"("path":{"type":"string","description":"Path of the file to read"},)"
      R"("region":{"type":"string","description":"Storage region, e.g. eu-west-1"},)"
      R"("limit":{"type":"integer","minimum":1,"description":"Maximum number of bytes to return"}},)"
      R"("required":["path"]},)"
    R"("annotations":{"title":"Read file","readOnlyHint":true,"destructiveHint":false,"idempotentHint":true,"openWorldHint":false}},)"
  R"({"name":"list_buckets","title":"List buckets","description":"Lists the storage buckets of the account.",)"
    R"("inputSchema":{"type":"object","properties":{)"
      R"("region":{"type":"string","description":"Only buckets in this region"}}},)"
    R"("annotations":{"title":"List buckets","readOnlyHint":true,"destructiveHint":false,"idempotentHint":true,"openWorldHint":false}},)"
  R"({"name":"write_file","title":"Write file","description":"Writes content to a file in the workspace.",)"
    R"("inputSchema":{"type":"object","properties":{)"
      R"("path":{"type":"string","description":"Path of the file to write"},)"
      R"("content":{"type":"string","description":"The new content"}},)"
      R"("required":["path","content"]},)"
    R"("annotations":{"title":"Write file","readOnlyHint":false,"destructiveHint":false,"idempotentHint":true,"openWorldHint":false}},)"
  R"({"name":"policy_generation_start","title":"Start policy generation","description":"Starts a policy generation job.",)"
    R"("inputSchema":{"type":"object","properties":{)"
      R"("job_name":{"type":"string","description":"Name of the job"}},)"
      R"("required":["job_name"]},)"
    R"("annotations":{"title":"Start policy generation","readOnlyHint":false,"destructiveHint":false,"idempotentHint":false,"openWorldHint":true}},)"
  R"({"name":"delete_bucket","title":"Delete bucket","description":"Deletes a storage bucket and everything in it.",)"
    R"("inputSchema":{"type":"object","properties":{)"
      R"("bucket":{"type":"string","description":"Name of the bucket"}},)"
      R"("required":["bucket"]},)"
    R"("annotations":{"title":"Delete bucket","readOnlyHint":false,"destructiveHint":true,"idempotentHint":true,"openWorldHint":false}},)"
  R"({"name":"put_bucket_policy","title":"Put bucket policy","description":"Replaces the access policy of a storage bucket.",)"
    R"("inputSchema":{"type":"object","properties":{)"
      R"("bucket":{"type":"string","description":"Name of the bucket"},)"
      R"("policy":{"type":"string","description":"The policy document as JSON text"}},)"
      R"("required":["bucket","policy"]},)"
    R"("annotations":{"title":"Put bucket policy","readOnlyHint":false,"destructiveHint":true,"idempotentHint":true,"openWorldHint":false}},)"
  R"({"name":"run_query","title":"Run query","description":"Runs a SQL query against the analytics database.",)"
    R"("inputSchema":{"type":"object","properties":{)"
      R"("sql":{"type":"string","description":"The SQL statement"}},)"
      R"("required":["sql"]},)"
    R"("annotations":{"title":"Run query","readOnlyHint":false,"destructiveHint":true,"idempotentHint":false,"openWorldHint":false}},)"
  R"({"name":"echo","title":"Echo","description":"Returns the text it is given.",)"
    R"("inputSchema":{"type":"object","properties":{)"
      R"("text":{"type":"string","description":"Text to return"}},)"
      R"("required":["text"]},)"
    R"("annotations":{"title":"Echo","readOnlyHint":true,"destructiveHint":false,"idempotentHint":true,"openWorldHint":false}},)"
  R"({"name":"long_job","title":"Long job","description":"Runs a job in steps, reporting progress for each step when the client streams.",)"
    R"("inputSchema":{"type":"object","properties":{)"
      R"("steps":{"type":"integer","minimum":0,"maximum":1000,"default":3,"description":"Number of steps"}}},)"
    R"("annotations":{"title":"Long job","readOnlyHint":true,"destructiveHint":false,"idempotentHint":true,"openWorldHint":false}})"
  R"(]})";

const std::string_view kResourcesListResult = R"({"resources":[)"
  R"({"uri":"file:///workspace/README.md","name":"README.md","title":"Workspace README","mimeType":"text/markdown"},)"
  R"({"uri":"s3://reports/q3-summary.csv","name":"q3-summary.csv","title":"Q3 revenue summary","mimeType":"text/csv"},)"
  R"({"uri":"config://policies/default","name":"default-policy","title":"Default access policy","mimeType":"application/json"})"
  R"(]})";

const std::string_view kPromptsListResult = R"({"prompts":[)"
  R"({"name":"summarize_bucket","title":"Summarize a bucket","description":"Summarize what a storage bucket holds and who can reach it.",)"
    R"("arguments":[{"name":"bucket","description":"Name of the bucket","required":true}]},)"
  R"({"name":"review_policy","title":"Review a policy","description":"Review a bucket policy for overly broad grants.",)"
    R"("arguments":[{"name":"policy","description":"The policy document","required":true}]})"
  R"(]})";
// clang-format on

}  // namespace sluice::example
