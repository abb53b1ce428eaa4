#!/usr/bin/env bash
# The main job: builds Sluice (release), starts the bundled example MCP server on
# 127.0.0.1:8081 and Sluice in front of it on 127.0.0.1:8080 with tools/examples/policy.json.
# Ctrl-C (or a SIGTERM to this script or to Sluice) stops both, and the script exits with
# Sluice's status. Try it from another terminal with the curl lines printed below.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
if [ ! -f build/release/build.ninja ]; then
  meson setup build/release --buildtype=release -Dtests=false -Dbenchmarks=false
fi
ninja -C build/release
listen=${SLUICE_LISTEN:-127.0.0.1:8080}
upstream_listen=${EXAMPLE_LISTEN:-127.0.0.1:8081}

build/release/tools/example_server/sluice-example-server --listen "$upstream_listen" &
upstream_pid=$!
trap 'kill $upstream_pid 2>/dev/null || true; wait 2>/dev/null || true' EXIT
cat <<MSG
Try, from another terminal:
  curl -s http://$listen/mcp -H 'Content-Type: application/json' \\
    -H 'Accept: application/json, text/event-stream' \\
    -d '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
  curl -s http://$listen/mcp -H 'Content-Type: application/json' \\
    -H 'Accept: application/json, text/event-stream' \\
    -d '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"delete_bucket","arguments":{"bucket":"prod"}}}'
  curl -s -i http://$listen/v1/decide \\
    -d '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"policy_generation_start","arguments":{}}}'
MSG
# Not exec: this shell stays to stop the example server however Sluice ends (Ctrl-C, a
# SIGTERM to this script or to Sluice alone, or a failed start), and exits with Sluice's status.
build/release/tools/sluice/sluice serve --policy tools/examples/policy.json \
  --listen "$listen" --upstream "http://$upstream_listen/mcp" &
sluice_pid=$!
trap 'kill $sluice_pid $upstream_pid 2>/dev/null || true; wait 2>/dev/null || true' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
status=0
wait $sluice_pid || status=$?
exit $status
