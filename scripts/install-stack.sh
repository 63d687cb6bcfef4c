#!/usr/bin/env bash
# Installs the local LiveKit stack (redis, livekit-server, our SIP bridge and its test phone)
# idempotently: Debian packages only when missing, Go binaries only when the cached build is
# not already at the pinned version (livekit-server) or of the same sources (sipbridge/).
#
#   scripts/install-stack.sh            # install what is missing
#   scripts/install-stack.sh --skip-sip # everything but the SIP bridge
#   STACK_CACHE=/some/dir scripts/...   # build into another cache (default: <repo>/.stack)
#
# Binaries land in $STACK_CACHE/bin (git-ignored); `python -m localstack` looks there first.
set -euo pipefail

LIVEKIT_SERVER_VERSION=v1.13.5
GO_MIN_MINOR=26 # livekit-server and sipbridge declare `go 1.26`

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACK_CACHE=${STACK_CACHE:-$REPO_ROOT/.stack}
BIN_DIR=$STACK_CACHE/bin
TIMINGS_LOG=$STACK_CACHE/build-times.log

# postgresql: the dialer queue's PostgreSQL tests start a throwaway cluster from its binaries.
# chromium: the rep console's end-to-end tests drive the real page in it (headless, fake audio).
APT_PACKAGES=(redis-server pkg-config libopus-dev libopusfile-dev libsoxr-dev espeak-ng sox baresip postgresql chromium)
# sipp is handy for scripted SIP calls but not required by the stack itself.
APT_OPTIONAL=(sip-tester)

log() { printf '[install-stack] %s\n' "$*"; }
die() { printf '[install-stack] ERROR: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

is_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

APT_UPDATED=0
apt_update_once() {
  if [ "$APT_UPDATED" -eq 0 ]; then
    log "apt-get update"
    as_root apt-get update -qq
    APT_UPDATED=1
  fi
}

install_apt_packages() {
  local missing=() pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    is_installed "$pkg" || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    log "Debian packages: all present (${APT_PACKAGES[*]})"
  else
    apt_update_once
    log "apt-get install ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
  for pkg in "${APT_OPTIONAL[@]}"; do
    if is_installed "$pkg"; then continue; fi
    apt_update_once
    log "apt-get install $pkg (optional)"
    as_root env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends "$pkg" \
      || log "WARNING: optional package $pkg is not available; continuing without it"
  done
}

find_go() {
  if command -v go >/dev/null 2>&1; then
    command -v go
  elif [ -x /usr/local/go/bin/go ]; then
    echo /usr/local/go/bin/go
  else
    die "Go >= 1.$GO_MIN_MINOR is required to build livekit-server and the SIP bridge (not found on PATH or in /usr/local/go)"
  fi
}

check_go_version() {
  local go_bin=$1 version minor
  version=$("$go_bin" env GOVERSION) # e.g. go1.26.8
  minor=$(echo "$version" | sed -E 's/^go1\.([0-9]+).*/\1/')
  if ! [[ "$minor" =~ ^[0-9]+$ ]] || [ "$minor" -lt "$GO_MIN_MINOR" ]; then
    die "$go_bin is $version; Go >= 1.$GO_MIN_MINOR is required"
  fi
  log "using $go_bin ($version)"
}

stamp_matches() {
  local name=$1 version=$2
  [ -x "$BIN_DIR/$name" ] && [ "$(cat "$BIN_DIR/.$name.version" 2>/dev/null)" = "$version" ]
}

# go_build NAME GO_PACKAGE VERSION BUILT_BINARY_NAME [ENV=VALUE...]
go_build() {
  local name=$1 package=$2 version=$3 built=$4
  shift 4
  if stamp_matches "$name" "$version"; then
    log "$name $version: already built in $BIN_DIR, skipping"
    return
  fi
  local tmp started elapsed
  tmp=$(mktemp -d "$STACK_CACHE/build.XXXXXX")
  log "$name $version: building $package@$version (this takes a few minutes on a cold cache)"
  started=$(date +%s)
  if ! env GOBIN="$tmp" "$@" "$GO" install "$package@$version" 2>&1 | tee "$tmp/go.log"; then
    if grep -q 'not available' "$tmp/go.log"; then
      log "the Go module proxy ($("$GO" env GOPROXY)) refuses to serve ${package%%/cmd/*}@$version;" \
        "$name cannot be built on this machine"
    fi
    rm -rf "$tmp"
    die "building $name failed (see the go output above)"
  fi
  elapsed=$(( $(date +%s) - started ))
  mv -f "$tmp/$built" "$BIN_DIR/$name"
  rm -rf "$tmp"
  echo "$version" > "$BIN_DIR/.$name.version"
  log "$name $version: built in ${elapsed}s -> $BIN_DIR/$name"
  printf '%s %s %s %ss\n' "$(date -u +%FT%TZ)" "$name" "$version" "$elapsed" >> "$TIMINGS_LOG"
}

install_livekit_server() {
  local on_path
  on_path=$(command -v livekit-server || true)
  if [ -n "$on_path" ] && [ "$on_path" != "$BIN_DIR/livekit-server" ]; then
    local found
    found=$("$on_path" --version 2>/dev/null || echo 'unknown version')
    log "livekit-server: using existing $on_path ($found)"
    if [[ "$found" != *"${LIVEKIT_SERVER_VERSION#v}"* ]]; then
      log "WARNING: the stack is tested with livekit-server $LIVEKIT_SERVER_VERSION"
    fi
    return
  fi
  go_build livekit-server github.com/livekit/livekit-server/cmd/server \
    "$LIVEKIT_SERVER_VERSION" server CGO_ENABLED=0
}

# Our SIP bridge (sipbridge/, built from this checkout; LiveKit's own cannot be had here) and
# its test phone. The stamp is a hash of the bridge's sources, so an edit rebuilds it.
install_sipbridge() {
  local source=$REPO_ROOT/sipbridge version tmp started
  version=$(cd "$source" && find . -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' \) \
    | sort | xargs sha256sum | sha256sum | cut -c1-16)
  if stamp_matches sipbridge "$version" && stamp_matches testphone "$version"; then
    log "sipbridge $version: already built in $BIN_DIR, skipping"
    return
  fi
  log "sipbridge $version: building from $source (cgo, libopus)"
  started=$(date +%s)
  tmp=$(mktemp -d "$STACK_CACHE/build.XXXXXX")
  ( cd "$source" && CGO_ENABLED=1 "$GO" build -o "$tmp/sipbridge" ./cmd/sipbridge \
      && CGO_ENABLED=1 "$GO" build -o "$tmp/testphone" ./cmd/testphone ) \
    || { rm -rf "$tmp"; die "building the SIP bridge failed (see the go output above)"; }
  mv -f "$tmp/sipbridge" "$tmp/testphone" "$BIN_DIR/"
  rm -rf "$tmp"
  echo "$version" > "$BIN_DIR/.sipbridge.version"
  echo "$version" > "$BIN_DIR/.testphone.version"
  log "sipbridge $version: built in $(( $(date +%s) - started ))s -> $BIN_DIR/sipbridge, testphone"
}

usage() {
  sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

main() {
  local skip_sip=0 arg
  for arg in "$@"; do
    case "$arg" in
      --skip-sip) skip_sip=1 ;;
      -h|--help) usage; exit 0 ;;
      *) usage >&2; die "unknown argument: $arg" ;;
    esac
  done
  mkdir -p "$BIN_DIR"
  # Serialise concurrent runs (a developer and a test session) on the same cache.
  exec 9>"$STACK_CACHE/install.lock"
  flock 9
  install_apt_packages
  GO=$(find_go)
  check_go_version "$GO"
  install_livekit_server
  if [ "$skip_sip" -eq 1 ]; then
    log "sipbridge: skipped (--skip-sip)"
  else
    install_sipbridge
  fi
  log "done. Binaries in $BIN_DIR:"
  ls -1 "$BIN_DIR" | sed 's/^/[install-stack]   /'
}

main "$@"
