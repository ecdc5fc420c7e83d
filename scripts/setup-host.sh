#!/usr/bin/env bash
# Prepares this machine for tp: Debian packages, a running Docker engine, dependencies, a build.
# Sourced by .ci/run and scripts/demo.sh. Idempotent: installs and starts only what is missing.
set -euo pipefail

TP_DOCKERD_LOG="${TP_DOCKERD_LOG:-/tmp/tp-dockerd.log}"

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# a Debian package is "missing" when dpkg does not list it as installed
package_missing() {
  ! dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

install_missing_packages() {
  local missing=()
  # any Docker engine will do (docker.io, docker-ce); install Debian's only when there is none
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  local package
  # tmux, tcsh and python3-dotenv are for the tests (a real terminal, csh env files, Compose v1's .env reader);
  # openssh-server is the sshd of the tests' second machine (test/helpers/remote-machine.ts), which runs
  # its own in a network namespace (where an init system runs, installing it also starts one on the host);
  # docker-registry serves images to the nodes of the tests' swarm (test/helpers/swarm-machine.ts);
  # tcpdump goes into tp's runtime image: a wiretap's agent captures the copy with it
  for package in sshfs openssh-sftp-server openssh-server iptables busybox-static tcpdump tmux tcsh python3-dotenv docker-registry; do
    if package_missing "$package"; then missing+=("$package"); fi
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    echo "setup: system packages present"
    return
  fi
  echo "setup: installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
}

check_node() {
  if ! command -v node >/dev/null 2>&1; then
    echo "setup: node is not installed; tp needs Node.js >= 20.19 (https://nodejs.org)" >&2
    exit 1
  fi
  if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'; then
    echo "setup: node $(node --version) is too old; tp needs Node.js >= 20.19" >&2
    exit 1
  fi
}

# true when we can tell that no dockerd process is running (pgrep may be missing on a bare machine)
dockerd_exited() {
  command -v pgrep >/dev/null 2>&1 && ! pgrep -x dockerd >/dev/null
}

ensure_docker_engine() {
  if docker info >/dev/null 2>&1; then
    echo "setup: Docker engine answers"
    return
  fi
  echo "setup: starting dockerd (log: $TP_DOCKERD_LOG)"
  # setsid + nohup: the engine outlives this script (later commands and tests use it)
  as_root setsid nohup dockerd >"$TP_DOCKERD_LOG" 2>&1 </dev/null &
  local waited=0
  until docker info >/dev/null 2>&1; do
    if [ "$waited" -ge 60 ] || { [ "$waited" -ge 3 ] && dockerd_exited; }; then
      echo "setup: dockerd did not answer within ${waited}s; last lines of $TP_DOCKERD_LOG:" >&2
      tail -n 40 "$TP_DOCKERD_LOG" >&2 || true
      exit 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
  echo "setup: Docker engine answers after ${waited}s"
}

install_and_build() {
  echo "setup: npm ci"
  npm ci --no-audit --no-fund
  echo "setup: npm run build"
  npm run build
}

setup_host() {
  install_missing_packages
  check_node
  ensure_docker_engine
  install_and_build
}
