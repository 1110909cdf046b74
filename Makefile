# Two entry points (see README): `make quickstart` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(BIN)/.installed

# The main job on the offline default: prepare ELSST R5, train OrthoGeoLoRA on English, evaluate on test,
# then the zero-shot model on the same queries and a paired significance test between the two.
quickstart: $(BIN)/.installed
	$(BIN)/elsst-bench prepare
	$(BIN)/elsst-bench train --adapter orthogeolora --languages en --run-id quickstart-orthogeolora --overwrite
	$(BIN)/elsst-bench evaluate --model all-MiniLM-L6-v2 --languages en
	$(BIN)/elsst-bench compare runs/zeroshot-all-minilm-l6-v2 runs/quickstart-orthogeolora

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

.PHONY: install quickstart test
