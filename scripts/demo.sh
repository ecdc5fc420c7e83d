#!/usr/bin/env bash
# The main job on a fresh machine: install what is missing, start Docker, build tp, bring the demo
# cluster up, then intercept frontend-v1 with the frontend-v2 container and give the traffic back:
#   tp intercept --docker frontend-v1 --port 8000 --docker-run -- frontend-v2
# Usage, from the repository root: bash scripts/demo.sh
# TP_DEMO_NETWORK=<name> runs it on a demo cluster of its own (default: tp-demo).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=./setup-host.sh
source scripts/setup-host.sh
setup_host

NETWORK="${TP_DEMO_NETWORK:-tp-demo}"
TP=(node packages/cli/bin/run.js)
tp() { "${TP[@]}" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# GET a URL from a client container on the demo network, as a service in the cluster would
client_get() {
  docker run --rm --network "$NETWORK" tp-demo-workload:latest timeout 5 wget -q -O - "$1" 2>&1 || true
}

step "tp demo up --network $NETWORK"
tp demo up --network "$NETWORK"

step "tp extensions"
tp extensions

step "a client on $NETWORK calls http://frontend-v1/ (the workload answers)"
client_get http://frontend-v1/

step "tp intercept --docker --namespace $NETWORK frontend-v1 --port 8000 --docker-run -- frontend-v2"
intercept_log=$(mktemp /tmp/tp-demo-intercept.XXXXXX)
"${TP[@]}" intercept --docker --namespace "$NETWORK" frontend-v1 --port 8000 --docker-run -- frontend-v2 </dev/null >"$intercept_log" 2>&1 &
intercept_pid=$!
# if anything below fails, still end the intercept (SIGTERM is tp's Ctrl-C)
trap 'kill -TERM "$intercept_pid" 2>/dev/null || true' EXIT

reply=""
for _ in $(seq 1 90); do
  reply=$(client_get http://frontend-v1/)
  case "$reply" in frontend-v2*) break ;; esac
  if ! kill -0 "$intercept_pid" 2>/dev/null; then break; fi
  sleep 1
done
cat "$intercept_log"
case "$reply" in
  frontend-v2*) ;;
  *)
    echo "demo: the intercept did not take over frontend-v1's traffic; tp's output is above" >&2
    exit 1
    ;;
esac

step "the same client call now reaches frontend-v2 on this side, with frontend-v1's environment and the catalog's answer"
printf '%s\n' "$reply"

step "end the intercept (SIGTERM, as Ctrl-C would)"
kill -TERM "$intercept_pid"
intercept_exit=0
wait "$intercept_pid" || intercept_exit=$?
trap - EXIT
tail -n 3 "$intercept_log"
rm -f "$intercept_log"
echo "tp intercept exited with code $intercept_exit"

step "the client gets frontend-v1's own answer again"
client_get http://frontend-v1/

step "tp quit (stops the daemon; nothing tp-labelled is left)"
tp quit
left=$( (docker ps -aq --filter label=tp.connection=default; docker volume ls -q --filter label=tp.connection=default) | wc -l)
echo "Docker objects of connection default left: $left"
echo
echo "The demo cluster stays up for you to try; \`tp demo down --network $NETWORK\` removes it."
