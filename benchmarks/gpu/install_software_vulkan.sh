#!/usr/bin/env bash
# Installs a software Vulkan driver that LiteRT's GPU accelerator (WebGPU
# over Vulkan) can use on a machine without a GPU, into a private folder:
# nothing system-wide changes, no other Vulkan user is affected.
#
#   benchmarks/gpu/install_software_vulkan.sh [swiftshader|lavapipe] [PREFIX]
#   source PREFIX/<driver>/env.sh      # then run Python in that shell
#
# swiftshader (default): Google's SwiftShader (computes in fp32) from the
#   npm package @sparticuz/chromium@147.0.0 (bin/swiftshader.tar.br, a
#   brotli tar with its own Vulkan loader); `npm pack` runs no scripts, the
#   tarball's sha256 is pinned, Node's zlib unpacks the brotli.
# lavapipe: Mesa 25 lavapipe (computes in fp16) from Debian
#   bookworm-backports, fetched with a private apt list and unpacked with
#   dpkg-deb -x; its plain library dependencies (LLVM 15, xcb, wayland)
#   are apt-installed if missing. Debian 12's own lavapipe (Mesa 22.3)
#   lacks features the accelerator needs ("No adapters found").
# lavapipe-22: that Debian 12 lavapipe, privately: the unusable driver the
#   GPU fallback is tested against (tests/runtime/test_gpu_probe.py).
#
# Both are software renderers: their timings are never GPU speeds.
# Idempotent: an installed driver is kept. Needs: npm + node, or apt-get.
set -euo pipefail

driver="${1:-swiftshader}"
prefix="${2:-${XDG_CACHE_HOME:-$HOME/.cache}/edge_backbones/vulkan}"
dest="$prefix/$driver"
started=$SECONDS

SWIFTSHADER_NPM="@sparticuz/chromium@147.0.0"
SWIFTSHADER_SHA256="18fe5404ce845594cd7d592fc07f37a19514079ba4d9c27192ad8b908743f16b"
LAVAPIPE_DEBS="mesa-vulkan-drivers libdrm2 libdrm-amdgpu1"
LAVAPIPE_LIBS="libllvm15 libelf1 libexpat1 libwayland-client0 libx11-xcb1 \
libxcb-dri3-0 libxcb-present0 libxcb-randr0 libxcb-shm0 libxcb-sync1 \
libxcb-xfixes0 libxcb1 libxshmfence1 libzstd1"

log() { echo "install_software_vulkan: $*" >&2; }

install_swiftshader() {
  local work tarball
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  log "npm pack $SWIFTSHADER_NPM (no install scripts)"
  (cd "$work" && npm pack "$SWIFTSHADER_NPM" --ignore-scripts --silent \
    >/dev/null)
  tarball="$(ls "$work"/*.tgz)"
  echo "$SWIFTSHADER_SHA256  $tarball" | sha256sum --check --quiet
  tar -xzf "$tarball" -C "$work" package/bin/swiftshader.tar.br
  node -e '
    const fs = require("fs"), zlib = require("zlib");
    const [src, dst] = process.argv.slice(1);
    fs.writeFileSync(dst, zlib.brotliDecompressSync(fs.readFileSync(src)));
  ' "$work/package/bin/swiftshader.tar.br" "$work/swiftshader.tar"
  mkdir -p "$work/out"
  tar -xf "$work/swiftshader.tar" -C "$work/out"
  # the ICD file names its library relative to itself: the folder moves
  # as a whole
  write_env "$work/out" "$dest/vk_swiftshader_icd.json" "$dest"
  rm -rf "$dest" && mkdir -p "$(dirname "$dest")" && mv "$work/out" "$dest"
}

install_lavapipe() {  # suite: bookworm-backports (Mesa 25) or bookworm
  local suite="$1" work apt_opts lib icd
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  missing=""
  for package in $LAVAPIPE_LIBS; do
    dpkg -s "$package" >/dev/null 2>&1 || missing="$missing $package"
  done
  if [ -n "$missing" ]; then
    log "apt-get install (plain libraries, no Vulkan driver):$missing"
    apt-get install -y -q --no-install-recommends $missing >/dev/null
  fi
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
  # a private apt list: the system's sources and state stay untouched
  for list_suite in bookworm "$suite"; do
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]" \
      "http://deb.debian.org/debian $list_suite main"
  done | sort -u >"$work/sources.list"
  apt_opts=(-o "Dir::Etc::SourceList=$work/sources.list"
    -o "Dir::Etc::SourceParts=/nonexistent" -o "Dir::State::Lists=$work/lists"
    -o "Dir::Cache=$work/cache" -o "APT::Sandbox::User=root")
  log "apt-get download $LAVAPIPE_DEBS ($suite) + libvulkan1"
  apt-get "${apt_opts[@]}" update -q >/dev/null
  # shellcheck disable=SC2046  # one word per package
  (cd "$work" && apt-get "${apt_opts[@]}" download -q libvulkan1 \
    $(printf '%s/'"$suite"' ' $LAVAPIPE_DEBS) >/dev/null)
  mkdir -p "$work/root"
  for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$work/root"; done
  lib="$dest/usr/lib/x86_64-linux-gnu"
  icd="$dest/lvp_icd.json"
  printf '{"file_format_version": "1.0.0", "ICD": {"library_path": "%s", %s}}\n' \
    "$lib/libvulkan_lvp.so" '"api_version": "1.3.0"' >"$work/root/lvp_icd.json"
  write_env "$work/root" "$icd" "$lib"
  rm -rf "$dest" && mkdir -p "$(dirname "$dest")" && mv "$work/root" "$dest"
}

write_env() {  # folder, ICD file, library folder (paths after the move)
  cat >"$1/env.sh" <<EOF
# source me: selects the $driver Vulkan driver (software) for LiteRT's GPU
export LD_LIBRARY_PATH="$3\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export VK_ICD_FILENAMES="$2"
export VK_DRIVER_FILES="$2"
export EDGE_BACKBONES_SOFTWARE_VULKAN="$driver"
EOF
}

if [ -f "$dest/env.sh" ]; then
  log "$driver already in $dest"
else
  case "$driver" in
    swiftshader) install_swiftshader ;;
    lavapipe) install_lavapipe bookworm-backports ;;
    lavapipe-22) install_lavapipe bookworm ;;
    *)
      log "unknown driver '$driver'; use swiftshader, lavapipe or lavapipe-22"
      exit 2
      ;;
  esac
  log "$driver installed in $dest ($((SECONDS - started)) s)"
fi
echo "$dest/env.sh"
