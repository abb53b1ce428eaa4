#!/usr/bin/env bash
# Builds sluice_<version>_amd64.deb with dpkg-buildpackage (debian/, dh + meson) from a copy of
# the tree in build/package, installs it with dpkg, runs the installed binary with the packaged
# config until it answers, checks the systemd unit, and purges the package again.
# Needs root (or sudo) for dpkg -i / -P. The .deb is left in build/package/.
set -euo pipefail
cd "$(dirname "$0")/.."
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
need=()
for p in debhelper dpkg-dev fakeroot; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "package: installing ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${need[@]}" >/dev/null
fi

out=build/package
src=$out/src
rm -rf "$out" && mkdir -p "$src"
# The tracked and new (not ignored) files, as they are in the working tree.
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$src" 2>/dev/null || true
version=$(dpkg-parsechangelog -l debian/changelog -S Version)
echo "package: dpkg-buildpackage sluice $version" >&2
(cd "$src" && dpkg-buildpackage -b -us -uc -jauto >../build.log 2>&1) ||
  { tail -40 "$out/build.log" >&2; exit 1; }
deb=$out/sluice_${version}_amd64.deb
[ -f "$deb" ] || { echo "package: $deb was not built" >&2; exit 1; }
dpkg-deb --contents "$deb" | awk '{print "package:   " $6}' >&2

cleanup() { $sudo dpkg -P sluice >/dev/null 2>&1 || true; }
trap cleanup EXIT
$sudo dpkg -i "$deb" >/dev/null
for f in /usr/bin/sluice /etc/sluice/config.json /etc/sluice/policy.json \
         /lib/systemd/system/sluice.service /etc/logrotate.d/sluice \
         /usr/share/man/man1/sluice.1.gz /usr/share/man/man5/sluice-policy.5.gz; do
  [ -e "$f" ] || { echo "package: $f is missing after dpkg -i" >&2; exit 1; }
done
/usr/bin/sluice check /etc/sluice/policy.json >&2

# The packaged config, on a free port: serve until the readiness line, then one decision.
# The readiness line arrives through a FIFO: read with a timeout, no polling.
tmp=$(mktemp -d)
mkfifo "$tmp/out"
/usr/bin/sluice serve --config /etc/sluice/config.json --listen 127.0.0.1:0 \
  >"$tmp/out" 2>"$tmp/err" &
pid=$!
exec 3<"$tmp/out"
line=""
read -r -t 10 line <&3 || true
if [[ "$line" != *" listening on "* ]]; then
  echo "package: the installed sluice did not become ready: $line" >&2
  cat "$tmp/err" >&2
  kill $pid 2>/dev/null || true
  exit 1
fi
echo "package: installed binary: $line" >&2
addr=$(sed -E 's/.* listening on ([^ ]+) .*/\1/' <<<"$line")
status=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
  --data '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_bucket"}}' \
  "http://$addr/v1/decide")
kill -TERM $pid && wait $pid
exec 3<&-
rm -rf "$tmp"
[ "$status" = 403 ] || { echo "package: /v1/decide answered $status, expected 403" >&2; exit 1; }
echo "package: /v1/decide on $addr answered 403 (deny) as the example policy says" >&2

if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify --man=no /lib/systemd/system/sluice.service
  echo "package: systemd-analyze verify sluice.service: ok" >&2
else
  echo "package: systemd-analyze not available: unit file check skipped" >&2
fi

$sudo dpkg -P sluice >/dev/null
trap - EXIT
if [ -e /usr/bin/sluice ] || [ -e /etc/sluice/config.json ] || dpkg -s sluice >/dev/null 2>&1; then
  echo "package: dpkg -P left sluice behind" >&2
  exit 1
fi
echo "package: $deb built, installed, served, purged" >&2
