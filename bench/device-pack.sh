#!/usr/bin/env bash
# Prepare, on this machine, what bench/device-run.sh needs on a bare GPU machine that reaches no
# registry (the device tool). The tool sends at most 64 MiB a call (working tree + carried paths),
# so the payload travels in two calls made back to back (the machine stays warm 30 s between them
# and keeps /tmp):
#
#   bash bench/device-pack.sh                    # once: builds .device/ and .gl/ (git-excluded)
#   bash bench/device-pack.sh --fixtures-aside   # before the calls (see below)
#   call 1: carry [".device/node.xz", ".device/modules-a.tar.xz", ".gl"]
#           command "bash bench/device-run.sh unpack"                       (timeout_s 120)
#   call 2: carry [".device/modules-b.tar.xz"]
#           command "bash bench/device-run.sh all"                          (timeout_s 600)
#   bash bench/device-pack.sh --fixtures-back
#
# What it makes:
#   .device/node.xz            this machine's Node binary (x86-64 Linux), xz-compressed
#   .device/modules-a.tar.xz   node_modules: the native parts (Dawn's linux-x64 build, onnxruntime-node's
#                              linux-x64 CPU library)
#   .device/modules-b.tar.xz   node_modules: everything else the benches and the kernel tests load
#                              (ORT Web's WebGPU bundle, tsx, vitest, ...), other platforms' binaries left out
#   .gl/*.deb                  the Vulkan loader and GL libraries (the device tool's README recipe)
# The tracked tree is ~89 MiB, ~77 of it test/fixtures/{reference,onnx,...}, which the device run does
# not need (kernel tests build their ONNX graphs; the benches write random weights and export their
# references with the machine's PyTorch): `--fixtures-aside` moves them to /tmp and `--fixtures-back`
# restores them. test/fixtures/images stays (the SAM-CLIP bench's photo).
set -euo pipefail
cd "$(dirname "$0")/.."
ASIDE=/tmp/samclip-fixtures-aside
AWAY="reference onnx clip pth"
case "${1:-}" in
  --fixtures-aside)
    mkdir -p "$ASIDE"
    for d in $AWAY; do [ -d "test/fixtures/$d" ] && mv "test/fixtures/$d" "$ASIDE/$d" && echo "test/fixtures/$d -> $ASIDE/$d"; done
    exit 0 ;;
  --fixtures-back)
    for d in $AWAY; do [ -d "$ASIDE/$d" ] && [ ! -e "test/fixtures/$d" ] && mv "$ASIDE/$d" "test/fixtures/$d" && echo "test/fixtures/$d restored"; done
    exit 0 ;;
esac
exclude="$(git rev-parse --git-path info/exclude)"
for d in /.device/ /.gl/; do grep -qxF "$d" "$exclude" 2>/dev/null || echo "$d" >> "$exclude"; done
mkdir -p .device .gl
xz -T0 -6 -c "$(command -v node)" > .device/node.xz
NATIVE=(webgpu onnxruntime-node)
pack() { # pack OUT [tar args...]
  local out=$1; shift
  tar -C node_modules --warning=no-file-changed -cf - \
    --exclude='webgpu/dist/darwin-*' --exclude='webgpu/dist/win32-*' --exclude='webgpu/dist/linux-arm64' \
    --exclude='onnxruntime-node/bin/napi-v*/darwin' --exclude='onnxruntime-node/bin/napi-v*/win32' \
    --exclude='onnxruntime-node/bin/napi-v*/linux/arm64' \
    --exclude='onnxruntime-web/dist/*.map' --exclude='onnxruntime-web/dist/*jsep*' --exclude='onnxruntime-web/dist/*jspi*' \
    --exclude='onnxruntime-web/dist/ort-wasm-simd-threaded.wasm' --exclude='onnxruntime-web/dist/ort-wasm-simd-threaded.mjs' \
    --exclude='onnxruntime-web/dist/ort.all*' --exclude='onnxruntime-web/dist/ort.min*' --exclude='onnxruntime-web/dist/ort.js' \
    --exclude='onnxruntime-web/dist/ort.mjs' --exclude='onnxruntime-web/dist/ort.wasm*' --exclude='onnxruntime-web/dist/ort.node*' \
    --exclude='onnxruntime-web/dist/ort.bundle*' --exclude='onnxruntime-web/lib' \
    --exclude='typescript' --exclude='@typescript' --exclude='playwright-core' --exclude='@types' --exclude='.vite' \
    --exclude='*.d.ts' --exclude='*.map' --exclude='*.md' \
    "$@" | xz -T0 -6 > "$out"
}
pack .device/modules-a.tar.xz "${NATIVE[@]}"
others=()
for p in node_modules/* node_modules/.bin node_modules/.package-lock.json; do
  n=${p#node_modules/}
  [[ " ${NATIVE[*]} " == *" $n "* ]] || others+=("$n")
done
pack .device/modules-b.tar.xz "${others[@]}"
(
  cd .gl
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  mkdir -p /tmp/amd64/partial
  # shellcheck disable=SC2086
  apt-get $o update -qq && apt-get $o download -qq libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2
)
mib() { echo $(( $1 / 1048576 )); }
size() { du -cb "$@" 2>/dev/null | tail -1 | cut -f1; }
tree=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
echo "tracked tree as present: $(mib "$tree") MiB (with the fixtures moved aside it is what travels)"
echo "call 1 carries $(mib "$(size .device/node.xz .device/modules-a.tar.xz .gl)") MiB, call 2 $(mib "$(size .device/modules-b.tar.xz)") MiB; limit 64 MiB per call, tree included"
