#!/bin/bash
# Prepares .device/ for a GPU session (../shared/device-kit/README.md): the kit, the tokenizer,
# a static release build of roast and the Debian packages the NVIDIA ICD needs beside the loader.
# Then a dry run here on lavapipe. On the device machine, `run` with carry [".device"]:
#   BUDGET=420 VERIFY_S=150 bash .device/device-run.sh
# (verify runs both kernel families, so it needs more than the kit's default 120 s), or, for the
# same-run ratios of the tensor cores and the families (tools/device/ab.sh):
#   BUDGET=300 VERIFY_S=150 bash .device/device-run.sh; AB_S=190 bash .device/ab.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
KIT=../shared/device-kit
grep -qx '/.device/' .git/info/exclude 2>/dev/null || echo /.device/ >> .git/info/exclude
rm -rf .device && mkdir -p .device/debs
cp -r $KIT/* ../shared/models/qwen3-tokenizer tools/device/ab.sh .device/
swift build -c release --static-swift-stdlib
strip -o /tmp/roast-static .build/release/roast && xz -T2 -c /tmp/roast-static > .device/roast.xz
mkdir -p /tmp/amd64/partial
o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
apt-get $o update -qq
(cd .device/debs && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 libgomp1)
du -sh .device
# The dry run makes tiny models with the kit's gguf-py, which needs numpy and sentencepiece here.
if [ "${DRY:-1}" = 1 ]; then
  python3 -c 'import numpy, sentencepiece' 2>/dev/null || python3 -m pip install --quiet numpy sentencepiece
  rm -rf /tmp/device-dry && mkdir -p /tmp/device-dry  # the kit writes into $OUT, as the device machine provides it
  DRY=1 OUT=/tmp/device-dry VERIFY=0 bash .device/device-run.sh
  OUT=/tmp/device-dry AB_S=90 AB_PROMPT=16 AB_GEN=4 bash .device/ab.sh  # the gpu family is slow on lavapipe
fi
