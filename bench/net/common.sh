# Sourced by the bench/net scripts. The policy every gateway benchmark runs (a deny_if regex
# and a per-grant rate limit: the full policy work on every call), and port helpers.

write_policy() {  # FILE
  cat > "$1" <<'JSON'
{"version":"1","default":"deny","tools":{"read_file":{
  "deny_if":[{"path":"args.path","op":"regex","value":"^/(etc|root)/"}],
  "limits":[{"counter":"reads","window":"day","max":4000000000,"scope":"grant"}]}}}
JSON
}

port_up() { (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }

wait_port() {  # PORT: until something accepts on it (10 s at most)
  for _ in $(seq 200); do port_up "$1" && return 0; sleep 0.05; done
  echo "port $1 not ready" >&2
  return 1
}

ports_free() {  # PORT...: SO_REUSEPORT would let a leftover server share a port silently
  for p in "$@"; do
    if port_up "$p"; then echo "port $p is in use" >&2; return 1; fi
  done
}
