#!/usr/bin/env bash
# Prepare, on this machine, what bench/device-run.sh needs on a bare GPU machine that reaches no
# registry: run it here before the device call, then call the device tool with
#   carry: [".device", ".gl"]   command: "bash bench/device-run.sh"   (timeout_s 600)
#
# What it makes (both folders are added to .git/info/exclude, so they travel only when carried):
#   .device/node          this machine's Node binary (x86-64 Linux)
#   .device/modules.tar.xz node_modules pruned to what the benches and kernel tests load on
#                         linux-x64 (Dawn, ORT Web's WebGPU bundle, ORT node's CPU library, tsx,
#                         vitest, tinybench, onnx-proto)
#   .gl/*.deb             the Vulkan loader and GL libraries (the device tool's README recipe)
# The device tool sends at most 64 MiB (working tree + carried folders). The tracked tree alone is
# ~89 MiB, ~85 of it test/fixtures: move the fixtures aside for the call (`--fixtures-aside`
# moves them to /tmp/samclip-fixtures-aside; `--fixtures-back` restores them). The device run
# needs none of them (kernel tests build their ONNX graphs, the benches write random weights).
set -euo pipefail
cd "$(dirname "$0")/.."
ASIDE=/tmp/samclip-fixtures-aside
case "${1:-}" in
  --fixtures-aside) [ -d test/fixtures ] && mv test/fixtures "$ASIDE" && echo "test/fixtures -> $ASIDE"; exit 0 ;;
  --fixtures-back) [ -d "$ASIDE" ] && [ ! -e test/fixtures ] && mv "$ASIDE" test/fixtures && echo "test/fixtures restored"; exit 0 ;;
esac
for d in /.device/ /.gl/; do grep -qxF "$d" .git/info/exclude 2>/dev/null || echo "$d" >> "$(git rev-parse --git-path info/exclude)"; done
mkdir -p .device .gl
cp "$(command -v node)" .device/node
tar -C node_modules -cJf .device/modules.tar.xz \
  --exclude='webgpu/dist/darwin-*' --exclude='webgpu/dist/win32-*' --exclude='webgpu/dist/linux-arm64' \
  --exclude='onnxruntime-node/bin/napi-v*/darwin' --exclude='onnxruntime-node/bin/napi-v*/win32' \
  --exclude='onnxruntime-node/bin/napi-v*/linux/arm64' \
  --exclude='onnxruntime-web/dist/*.map' --exclude='onnxruntime-web/dist/*jsep*' --exclude='onnxruntime-web/dist/*jspi*' \
  --exclude='onnxruntime-web/dist/ort-wasm-simd-threaded.wasm' --exclude='onnxruntime-web/dist/ort-wasm-simd-threaded.mjs' \
  --exclude='onnxruntime-web/dist/ort.all*' --exclude='onnxruntime-web/dist/ort.min*' --exclude='onnxruntime-web/dist/ort.js' \
  --exclude='onnxruntime-web/dist/ort.mjs' --exclude='onnxruntime-web/dist/ort.wasm*' --exclude='onnxruntime-web/dist/ort.node*' \
  --exclude='onnxruntime-web/dist/ort.bundle*' --exclude='onnxruntime-web/lib' \
  --exclude='typescript' --exclude='@typescript' --exclude='playwright-core' --exclude='@types' \
  --exclude='*.d.ts' --exclude='*.map' --exclude='*.md' \
  .
(
  cd .gl
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  mkdir -p /tmp/amd64/partial
  # shellcheck disable=SC2086
  apt-get $o update -qq && apt-get $o download -qq libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2
)
tree=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
carried=$(du -cb .device .gl | tail -1 | cut -f1)
echo "tracked tree $((tree / 1048576)) MiB (present files), carried $((carried / 1048576)) MiB; the device tool's limit is 64 MiB in all"
