#!/usr/bin/env bash
# The main job on a fresh machine: install what is missing, start Docker, build tp, bring the demo
# cluster up and show what tp can do with it. Usage, from the repository root: bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=./setup-host.sh
source scripts/setup-host.sh
setup_host

tp() { node packages/cli/bin/run.js "$@"; }

echo
echo "demo: tp demo up"
tp demo up

echo
echo "demo: tp extensions"
tp extensions
