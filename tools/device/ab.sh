#!/bin/bash
# Same-machine ratios for the gpu family's variants, after the kit's device-run.sh (which leaves the
# models in /tmp/dk/m and the static roast in /tmp/dk/b): prefill and decode of the first model
# with the tensor cores (default), without them (ROAST_COOPMAT=0) and with the lavapipe family.
# Writes $OUT/ab.txt. On the device machine, in the same `run` as the kit:
#   BUDGET=330 VERIFY_S=150 bash .device/device-run.sh; AB_S=120 bash .device/ab.sh
set -u
W=/tmp/dk; R=${ROAST:-$W/b/roast}; [ -x "$R" ] || R=$PWD/.build/release/roast
m=$(ls $W/m/*.gguf 2>/dev/null | grep -m1 -E '0.5b|tiny') || { echo "ab.sh: no model in $W/m (run device-run.sh first)"; exit 1; }
T0=$(date +%s); AB_S=${AB_S:-120}  # AB_PROMPT: prompt tokens (512); AB_RUN_S: seconds per bench (40)
run() {  # label, then env assignments and roast options
  local label=$1; shift
  [ $(( AB_S - ($(date +%s) - T0) )) -gt 20 ] || { echo "$label: out of time" | tee -a $OUT/ab.txt; return; }
  echo "== $label" | tee -a $OUT/ab.txt
  env "$@" timeout ${AB_RUN_S:-40} $R bench --model $m --prompt-tokens ${AB_PROMPT:-512} --gen-tokens 32 --json 2>&1 | tail -c 1500 | tee -a $OUT/ab.txt
}
mkdir -p $OUT; : > $OUT/ab.txt; echo "model $m" | tee -a $OUT/ab.txt
run "gpu family, tensor cores" ROAST_KERNELS=gpu
run "gpu family, ROAST_COOPMAT=0" ROAST_KERNELS=gpu ROAST_COOPMAT=0
run "lavapipe family" ROAST_KERNELS=lavapipe
