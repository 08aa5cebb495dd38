#!/usr/bin/env bash
# Runs the GPU benchmark tables on a lent GPU machine (see README "Benchmarks"), each with both
# WebGPU implementations, plus the PyTorch baselines. Usage, from the project root:
#   bash .gpu/run.sh bash bench/gpu_suite.sh [matmul|attention|ops|lasp|all] [OUTDIR]
# Every table script validates against float64 before it times anything.
set -uo pipefail
what=${1:-all}
out=${2:-${OUT:-/tmp/lasp-bench}}
mkdir -p "$out"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader | tee "$out/card.txt"
run() { # name, command…
  local name=$1
  shift
  echo "=== $name: $*"
  local t0=$SECONDS
  "$@" 2>&1 | grep -v -E '^\s*$|Warning|Ignored build scripts|Lifecycle scripts|nodeModulesDir|^\W+$' >"$out/$name.txt"
  echo "  exit ${PIPESTATUS[0]}, $((SECONDS - t0)) s"
  tail -n 30 "$out/$name.txt"
}
deno_run=(deno run -A --cached-only)
for impl in dawn deno; do
  case $what in matmul | all) run "matmul_$impl" "${deno_run[@]}" bench/matmul_table.ts --gpu $impl --sizes 1024,4096,8192 ;; esac
  case $what in attention | all) run "attention_$impl" "${deno_run[@]}" bench/linear_attention_table.ts --gpu $impl ;; esac
  case $what in ops | all) run "model_ops_$impl" "${deno_run[@]}" bench/model_ops_table.ts --gpu $impl --tokens 16384 --dim 2048 --vocab 50257 --ce-rows 4096 --adam-m 100 ;; esac
  case $what in lasp | all) run "lasp_$impl" "${deno_run[@]}" bench/lasp_exchange.ts --gpu $impl ;; esac
done
case $what in matmul | all) run torch_matmul python3 bench/torch_matmul.py --sizes 1024,4096,8192 ;; esac
case $what in attention | all) run torch_attention python3 bench/torch_linear_attention.py ;; esac
