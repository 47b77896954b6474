# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.install-stamp
INDEX_DIR ?= .rag/index
HOST ?= 127.0.0.1
PORT ?= 7860

export GRADIO_ANALYTICS_ENABLED := False
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: install chromium index run test test-fast eval train bench clean

# Re-installs only when pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

index: install
	$(BIN)/rag index seeds/ --index-dir $(INDEX_DIR)

run: index
	$(BIN)/rag serve --host $(HOST) --port $(PORT) --index-dir $(INDEX_DIR)

eval: index
	$(BIN)/rag eval evals/questions.jsonl --index-dir $(INDEX_DIR) --report .rag/eval --predictions .rag/eval/predictions.jsonl

# Rebuilds rag/models/answer_model.json from ../shared/benchmarks-dev and the tune split (see evals/train.py).
train: install
	$(BIN)/python -m evals.train

bench: install
	$(BIN)/rag bench --out .rag/bench

test: install chromium
	$(BIN)/python -m pytest

# The browser test drives Debian's Chromium (Playwright's own browser download does not work here), or
# the browser $RAG_CHROMIUM names. When neither is there, it is installed if this is a root shell with
# apt-get; otherwise that one test is skipped, saying so (under CI=true it fails instead).
CHROMIUM_FOUND := $(or $(RAG_CHROMIUM),$(shell command -v chromium))
CAN_APT := $(and $(filter 0,$(shell id -u)),$(shell command -v apt-get))
chromium:
ifeq ($(CHROMIUM_FOUND),)
ifneq ($(CAN_APT),)
	DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
	  || echo "make: could not install chromium; the browser test will say what to do"
endif
endif

test-fast: install
	$(BIN)/python -m pytest -m 'not integration'

clean:
	rm -rf $(VENV) .rag *.egg-info
