#!/usr/bin/env bash
# An emulated Raspberry Pi (64-bit Raspberry Pi OS = Debian bookworm arm64)
# on an x86 Linux machine, for running the runtime on ARM kernels.
#
#   benchmarks/pi/rootfs.sh build             # rootfs + the two venvs (cached)
#   benchmarks/pi/rootfs.sh install WHEEL     # our wheel into both venvs
#   benchmarks/pi/rootfs.sh run CPU VENV CMD… # CMD inside, CPU = cortex-a72|a76
#
# Runs as root (debootstrap, chroot, mounts). The root filesystem is built
# without emulating dpkg: debootstrap --foreign downloads the .debs and the
# host's dpkg-deb unpacks them (maintainer scripts never run; python3 and
# pip need none of them). Emulation is ~400x slower than a Pi: figures
# measured in here are numerics, never Pi speeds.
set -euo pipefail

CACHE="${EDGE_BACKBONES_CACHE:-$HOME/.cache/edge_backbones}/pi"
ROOT="$CACHE/rootfs-bookworm-arm64"
HERE="$(cd "$(dirname "$0")" && pwd)"
# the packages each venv holds; a change rebuilds that venv
LITERT_PACKAGES="ai-edge-litert==2.3.0 numpy opencv-python-headless pytest"
# tflite-runtime 2.14 (its last release) was built against numpy 1.x, and
# opencv 4.12 needs numpy 2
TFLITE_PACKAGES="tflite-runtime==2.14.0 numpy<2 opencv-python-headless<4.12 pytest"

log() { echo "[pi-rootfs] $*" >&2; }

host_mirror() {
  # the Debian mirror apt already uses here (deb822 or one-line sources)
  local url
  url=$(grep -rhoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' \
          /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
        | grep -oE 'https?://[^ ]+' | head -n1 || true)
  echo "${url:-http://deb.debian.org/debian}"
}

ensure_binfmt() {
  command -v qemu-aarch64-static >/dev/null && command -v debootstrap >/dev/null \
    || { log "installing qemu-user-static, binfmt-support, debootstrap";
         apt-get update -q >/dev/null
         DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
           qemu-user-static binfmt-support debootstrap >/dev/null; }
  if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  fi
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    update-binfmts --enable qemu-aarch64
  fi
}

build_rootfs() {
  if [ -x "$ROOT/usr/bin/python3.11" ] && [ -f "$ROOT/.unpacked" ]; then
    return
  fi
  local mirror; mirror=$(host_mirror)
  log "debootstrap arm64 bookworm from $mirror"
  rm -rf "$ROOT"; mkdir -p "$ROOT"
  debootstrap --arch=arm64 --variant=minbase --foreign \
    --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$ROOT" "$mirror" >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -20 "$CACHE/debootstrap.log"; exit 1; }
  log "unpacking $(ls "$ROOT"/var/cache/apt/archives/*.deb | wc -l) packages"
  for deb in "$ROOT"/var/cache/apt/archives/*.deb; do
    dpkg-deb -x "$deb" "$ROOT"
  done
  rm -f "$ROOT"/var/cache/apt/archives/*.deb
  touch "$ROOT/.unpacked"
}

# run CPU CMD...: CMD in the rootfs, clean environment, Pi cpuinfo bound
# over /proc/cpuinfo in a private mount namespace (with the host's x86
# cpuinfo LiteRT crashes in allocate_tensors; with none, XNNPACK is off)
run_in() {
  local cpu="$1"; shift
  local board
  case "$cpu" in
    cortex-a72) board=pi4 ;;
    cortex-a76) board=pi5 ;;
    *) log "CPU must be cortex-a72 (Pi 4) or cortex-a76 (Pi 5); got $cpu"
       exit 2 ;;
  esac
  local cpuinfo="$CACHE/cpuinfo-$board"
  "$HERE/cpuinfo.sh" "$board" "$(nproc)" >"$cpuinfo"
  mkdir -p "$CACHE/pip-cache" "$ROOT/root/.cache/pip" "$ROOT/work"
  cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/host-ca.crt"
  unshare -m -- /bin/bash -s "$ROOT" "$cpuinfo" "$CACHE/pip-cache" \
    "${EDGE_BACKBONES_PI_WORK:-$CACHE/work}" "$cpu" "$@" <<'INNER'
set -euo pipefail
root="$1" cpuinfo="$2" pipcache="$3" work="$4" cpu="$5"; shift 5
mkdir -p "$work"
mount --make-rprivate /
mount -t proc proc "$root/proc"
mount --bind "$cpuinfo" "$root/proc/cpuinfo"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"
mount --bind "$pipcache" "$root/root/.cache/pip"
mount --bind "$work" "$root/work"
exec chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 \
  PATH=/usr/local/bin:/usr/bin:/bin QEMU_CPU="$cpu" \
  PIP_CERT=/etc/ssl/certs/host-ca.crt PIP_DISABLE_PIP_VERSION_CHECK=1 \
  PIP_PROGRESS_BAR=off EDGE_BACKBONES_EMULATED="qemu-user $cpu" "$@"
INNER
}

# pip for the Pi, run on the host: it resolves and unpacks aarch64 cp311
# wheels for bookworm's glibc 2.36 (pip 23 takes no glibc range, so every
# manylinux_2_x tag up to 2.36 is listed) without emulating pip itself
pi_pip() {  # TARGET_VENV ARGS...
  local venv="$1"; shift
  local platforms=(--platform manylinux2014_aarch64)
  for glibc in $(seq 17 36); do
    platforms+=(--platform "manylinux_2_${glibc}_aarch64")
  done
  python3 -m pip install -q --disable-pip-version-check \
    --target "$ROOT/opt/$venv/lib/python3.11/site-packages" \
    --python-version 3.11 --implementation cp --abi cp311 \
    "${platforms[@]}" --only-binary=:all: "$@" 2>&1 \
    | grep -v -e "dependency resolver does not" -e "requires numpy" -e "Location " \
        -e "Running pip as the 'root'" || true
  [ "${PIPESTATUS[0]}" = 0 ]
}

build_venv() {  # NAME PACKAGES
  local name="$1" packages="$2" stamp="$ROOT/opt/$1/.packages"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$packages" ]; then
    return
  fi
  log "venv /opt/$name: $packages"
  rm -rf "$ROOT/opt/$name"
  # the venv itself is made by the Pi's python (its paths and symlinks)
  run_in cortex-a72 /usr/bin/python3 -m venv --without-pip "/opt/$name"
  # shellcheck disable=SC2086 # one word per requirement
  pi_pip "$name" $packages
  echo "$packages" >"$stamp"
}

install_wheel() {  # WHEEL: our package, runtime dependencies only
  # the core install resolves its own runtime dependencies for aarch64:
  # whatever it pulls is what a Pi gets (no TensorFlow: tests/device)
  pi_pip litert --upgrade "$1"
  # tflite-runtime needs numpy<2, which ai-edge-litert's dependencies
  # refuse: that venv takes our package without its dependencies
  pi_pip tflite --upgrade --no-deps "$1"
}

main() {
  local command="${1:-}"; shift || true
  case "$command" in
    build) ensure_binfmt; mkdir -p "$CACHE"; build_rootfs
           build_venv litert "$LITERT_PACKAGES"
           build_venv tflite "$TFLITE_PACKAGES" ;;
    install) install_wheel "$1" ;;
    run) ensure_binfmt; run_in "$@" ;;
    *) sed -n '2,13p' "$0"; exit 2 ;;
  esac
}

main "$@"
