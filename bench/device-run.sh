#!/usr/bin/env bash
# One prepared run on a bare GPU machine (the device tool; bench/device-pack.sh says how to call it:
# two calls, `unpack` then `all`): installs what is missing from the carried files (kept in
# /tmp/samclip-device between the calls), runs the GPU correctness tests (every kernel variant
# forced) and `npm run bench:device`, and writes everything under $OUT:
#   $OUT/doctor.txt         samclip doctor (adapter, features, limits, kernel choices)
#   $OUT/bench.log          the device bench's output
#   $OUT/results/<adapter>.json, .md   its results (commit the .json under bench/results/)
#   $OUT/tests.log          vitest on the kernel and GPU tests
#
#   bash bench/device-run.sh [unpack|all|bench|tests] [-- extra bench:device flags]
#
# Time: the device tool allows 10 minutes a command and 15 minutes of device time a session.
# `all` runs the tests first (~1-2 min on a GPU), then the full bench with what is left; on a
# timeout everything written so far under $OUT still comes back, the results file included (the
# bench rewrites it after every step, listing the steps it did not reach as `pending`).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/samclip-device-out}"
mkdir -p "$OUT/results"
phase="${1:-all}"
shift || true
[ "${1:-}" = "--" ] && shift
log() { echo "[device-run $(date +%H:%M:%S)] $*" | tee -a "$OUT/run.log"; }

# --- system libraries: the Vulkan loader (the device tool's README recipe)
if [ -d .gl ] && ! ldconfig -p | grep -q libvulkan.so.1; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  log "unpacked $(ls .gl/*.deb | wc -l) loader packages"
fi
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] && [ ! -e /usr/share/vulkan/icd.d/nvidia_icd.json ] && [ ! -e /etc/vulkan/icd.d/nvidia_icd.json ]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"

# --- Node and node_modules, unpacked from whichever carried parts this call brought
KEEP=/tmp/samclip-device
mkdir -p "$KEEP/bin" "$KEEP/node_modules"
[ -f .device/node.xz ] && xz -dc .device/node.xz > "$KEEP/bin/node" && chmod +x "$KEEP/bin/node" && log "node unpacked"
for part in a b; do
  [ -f ".device/modules-$part.tar.xz" ] && tar -C "$KEEP/node_modules" -xJf ".device/modules-$part.tar.xz" && log "modules-$part unpacked"
done
[ "$phase" = unpack ] && { ls -la "$KEEP" "$KEEP/node_modules" | head -20 >>"$OUT/run.log"; log "unpack done"; exit 0; }
if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  [ -x "$KEEP/bin/node" ] || { log "no Node >= 20 here and none unpacked: see bench/device-pack.sh"; exit 2; }
  export PATH="$KEEP/bin:$PATH"
fi
if [ ! -d node_modules/webgpu ]; then
  if [ -d "$KEEP/node_modules/webgpu" ]; then
    rm -rf node_modules && ln -s "$KEEP/node_modules" node_modules
  elif command -v npm >/dev/null; then
    npm ci --no-audit --no-fund >>"$OUT/run.log" 2>&1
  fi
fi
# The PyTorch that exports the ONNX references (the image's python3 holds torch and onnx).
if [ -z "${SAMCLIP_PYTHON:-}" ]; then
  for p in python3 /opt/torch/.venv/bin/python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null && "$p" -c 'import torch, onnx' 2>/dev/null; then export SAMCLIP_PYTHON="$(command -v "$p")"; break; fi
  done
fi
log "node $(node --version), python ${SAMCLIP_PYTHON:-none with torch}, nvidia: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo none)"
node bin/samclip.mjs doctor >"$OUT/doctor.txt" 2>&1
log "doctor exit $?: $(grep -m1 '^adapter' "$OUT/doctor.txt")"

run_tests() {
  # Kernel parity tests (every variant forced by the tests themselves) and the context tests.
  log "tests: start"
  timeout 300 node node_modules/vitest/vitest.mjs run test/kernels test/gpu --maxWorkers=4 >"$OUT/tests.log" 2>&1
  log "tests exit $?: $(grep -E 'Tests +[0-9]' "$OUT/tests.log" | tail -1)"
}

run_bench() {
  log "bench: start"
  # Whatever is left of the tool's 600 s per command, less a margin for the files to come back.
  local left=$((580 - SECONDS))
  [ "$left" -lt 60 ] && { log "bench: only ${left} s left, skipped"; return; }
  timeout "$left" node --liftoff-only --import tsx bench/device.ts --out "$OUT/results" "$@" >"$OUT/bench.log" 2>&1
  log "bench exit $?"
}

case "$phase" in
  tests) run_tests ;;
  bench) run_bench "$@" ;;
  all) run_tests; run_bench "$@" ;;
  *) log "unknown phase '$phase' (all, bench or tests)"; exit 2 ;;
esac
ls -la "$OUT" "$OUT/results" >>"$OUT/run.log" 2>&1
