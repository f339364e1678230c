#!/bin/bash
# Same-machine ratios for the gpu family's variants, after the kit's device-run.sh (which leaves the
# models in /tmp/dk/m and the static roast in /tmp/dk/b): prefill and decode of the first model
# with the tensor cores (default), without split-K (ROAST_SPLIT_K=0: the batch-32 and prefill
# rows show what it gains), with each batch queued whole (ROAST_SUBMIT_EVERY=0: the decode rows
# show what overlapping the host's recording with the device gains), recording every decode step
# anew (ROAST_REUSE_COMMANDS=0: the decode rows and the host share show what replaying a step's
# kept command buffer gains), without the tensor cores (ROAST_COOPMAT=0) and with the lavapipe family.
# Writes $OUT/ab.txt. On the device machine, in the same `run` as the kit:
#   BUDGET=300 VERIFY_S=150 bash .device/device-run.sh; AB_S=190 bash .device/ab.sh
set -u
W=/tmp/dk; R=${ROAST:-$W/b/roast}; [ -x "$R" ] || R=$PWD/.build/release/roast
# AB_MODEL: another of the kit's files (the 7B q4_k one for the vector kernel's K split).
m=${AB_MODEL:-$(ls $W/m/*.gguf 2>/dev/null | grep -m1 -E '0.5b|tiny')} || { echo "ab.sh: no model in $W/m (run device-run.sh first)"; exit 1; }
[ -f "$m" ] || { echo "ab.sh: no model $m (run device-run.sh first)"; exit 1; }
T0=$(date +%s); AB_S=${AB_S:-190}  # AB_PROMPT: prompt tokens (512); AB_GEN: generated (32); AB_RUN_S: seconds per bench (30)
run() {  # label, then env assignments and roast options
  local label=$1; shift
  [ $(( AB_S - ($(date +%s) - T0) )) -gt 20 ] || { echo "$label: out of time" | tee -a $OUT/ab.txt; return; }
  echo "== $label" | tee -a $OUT/ab.txt
  env "$@" timeout ${AB_RUN_S:-30} $R bench --model $m --prompt-tokens ${AB_PROMPT:-512} --gen-tokens ${AB_GEN:-32} --json 2>&1 | tail -c 1500 | tee -a $OUT/ab.txt
}
mkdir -p $OUT; : > $OUT/ab.txt; echo "model $m" | tee -a $OUT/ab.txt
run "gpu family, tensor cores" ROAST_KERNELS=gpu
run "gpu family, ROAST_REUSE_COMMANDS=0" ROAST_KERNELS=gpu ROAST_REUSE_COMMANDS=0
run "gpu family, ROAST_SPLIT_K=0" ROAST_KERNELS=gpu ROAST_SPLIT_K=0
run "gpu family, ROAST_SUBMIT_EVERY=0" ROAST_KERNELS=gpu ROAST_SUBMIT_EVERY=0
run "gpu family, ROAST_COOPMAT=0" ROAST_KERNELS=gpu ROAST_COOPMAT=0
run "lavapipe family" ROAST_KERNELS=lavapipe
