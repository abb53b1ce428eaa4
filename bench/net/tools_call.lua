-- wrk script: POSTs a ~300-byte MCP tools/call, PIPELINE requests per write (env, default 1),
-- to TARGET_PATH (env, default /v1/decide). Used by bench/net/vs_nginx.sh.
local message = '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"read_file",'
  .. '"arguments":{"path":"/data/reports/2026/q3.parquet","region":"eu-west-1","limit":10}}}'
local pipeline = tonumber(os.getenv("PIPELINE") or "1")
local path = os.getenv("TARGET_PATH") or "/v1/decide"
local headers = {
  ["Content-Type"] = "application/json",
  ["Accept"] = "application/json, text/event-stream",
}
local batch

function init(args)
  local parts = {}
  for i = 1, pipeline do parts[i] = wrk.format("POST", path, headers, message) end
  batch = table.concat(parts)
end

function request()
  return batch
end
