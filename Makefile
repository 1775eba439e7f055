# Two commands do all the set-up (README): `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_OUT ?= out/demo

.PHONY: install install-dev demo test test-slow clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Plain install: viewer, tracking and export on CPU with ONNX Runtime (no torch).
$(VENV)/.base: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e .
	touch $@

# Development install: + training (torch pinned to the local CPU build) + test tools.
$(VENV)/.dev: $(VENV)/.base
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[train,dev]'
	$(BIN)/pip install -q --no-deps movement==0.15.0  # test reader of our pose files; see pyproject.toml (dev)
	touch $@

install: $(VENV)/.base
install-dev: $(VENV)/.dev

# Track the shipped real clip with the shipped model: tracks, joints, overlay video, exports.
demo: $(VENV)/.base
	$(BIN)/parttrack track trained/bbb/clip.mp4 -o $(DEMO_OUT) --overlay --export animation

test: $(VENV)/.dev
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

test-slow: $(VENV)/.dev
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -m slow

clean:
	rm -rf $(VENV) out build *.egg-info
