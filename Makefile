# CodeTune Studio: `make run` sets everything up and starts the studio; `make test` sets
# everything up and runs lint, type checks, layer contracts and the test suite.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Which torch build: auto (CUDA where nvidia-smi sees a GPU, else CPU), cpu, cuda, or skip
# (keep whatever torch the environment already has).
TORCH ?= auto
# Where the CPU build of torch comes from; empty to use only the configured package indexes.
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
CPU_CONSTRAINTS := packaging/constraints-cpu.txt
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
ARGS ?=

.PHONY: setup run test lint typecheck contracts pytest test-headless test-slow bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml $(CPU_CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@mode="$(TORCH)"; \
	if [ "$$mode" = auto ]; then \
	  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then mode=cuda; else mode=cpu; fi; \
	fi; \
	echo "torch build: $$mode"; \
	case "$$mode" in \
	  cpu) index=""; [ -n "$(TORCH_CPU_INDEX)" ] && index="--extra-index-url $(TORCH_CPU_INDEX)"; \
	       $(BIN)/python -m pip install --retries 1 -c $(CPU_CONSTRAINTS) $$index torch \
	       && $(BIN)/python -m pip install -c $(CPU_CONSTRAINTS) -e ".[test]" ;; \
	  cuda) $(BIN)/python -m pip install torch && $(BIN)/python -m pip install -e ".[test]" ;; \
	  skip) $(BIN)/python -m pip install -e ".[test]" ;; \
	  *) echo "TORCH must be auto, cpu, cuda or skip (got $$mode)"; exit 2 ;; \
	esac
	touch $@

run: setup
	$(BIN)/codetune-studio $(ARGS)

lint: setup
	$(BIN)/ruff check app tests benchmarks
	$(BIN)/ruff format --check app tests benchmarks

typecheck: setup
	$(BIN)/mypy

contracts: setup
	$(BIN)/lint-imports

pytest: setup
	$(BIN)/pytest $(PYTEST_ARGS)

# The unit tests once more with Qt unimportable: the layers below ui/ must work on a server.
test-headless: setup
	CODETUNE_HEADLESS_TESTS=1 $(BIN)/pytest -q -p no:pytest-qt -o required_plugins=pytest-timeout \
	  -o addopts="-ra --strict-markers" -W "ignore::pytest.PytestConfigWarning" tests/unit

test: lint typecheck contracts test-headless pytest

test-slow: setup
	$(BIN)/pytest --run-slow $(PYTEST_ARGS)

bench: setup
	$(BIN)/python benchmarks/metrics_insert.py

clean:
	rm -rf $(VENV) build dist .mypy_cache .pytest_cache .ruff_cache

# --- The packaged studio (PyInstaller, one folder; see packaging/README.md) ---------------------
# `make package` builds dist/codetune-studio/ and its tar.gz from .venv (so from the locked set
# that `setup` installs); PACKAGE_TORCH=cuda packages a CUDA build (make setup TORCH=cuda first).
# `make package-test` builds if needed, then smoke-tests the archive outside the checkout.
PACKAGE_TORCH ?= cpu
PACKAGE_VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' app/codetune_studio/__init__.py)
PACKAGE_DIR := dist/codetune-studio
PACKAGE_EXE := $(PACKAGE_DIR)/codetune-studio
PACKAGE_ARCHIVE := dist/codetune-studio-$(PACKAGE_VERSION)-linux-$(shell uname -m)-$(PACKAGE_TORCH).tar.gz
PACKAGE_STAGE := build/package-stage
# What goes into the bundle (a change to the smoke test or the docs does not rebuild it).
PACKAGE_SOURCES := pyproject.toml packaging/codetune-studio.spec packaging/entry.py \
  packaging/stage.py $(shell find app resources packaging/linux -type f \
  -not -path '*/__pycache__/*' -not -path '*.egg-info/*' 2>/dev/null)

.PHONY: package package-test

package: $(PACKAGE_ARCHIVE)

$(PACKAGE_EXE): $(STAMP) $(PACKAGE_SOURCES)
	$(BIN)/python -c "import PyInstaller" 2>/dev/null || \
	  $(BIN)/python -m pip install -c $(CPU_CONSTRAINTS) "pyinstaller>=6.10"
	$(BIN)/python packaging/stage.py record $(PACKAGE_STAGE) --torch $(PACKAGE_TORCH)
	rm -rf $(PACKAGE_DIR)
	CODETUNE_PACKAGE_STAGE=$(PACKAGE_STAGE) CODETUNE_PACKAGE_TORCH=$(PACKAGE_TORCH) \
	  $(BIN)/pyinstaller --noconfirm --log-level WARN --distpath dist --workpath build/pyinstaller \
	  packaging/codetune-studio.spec
	$(BIN)/python packaging/stage.py starter $(PACKAGE_STAGE)
	mkdir -p $(PACKAGE_DIR)/_internal/models
	cp -r $(PACKAGE_STAGE)/models/starter-v1 $(PACKAGE_DIR)/_internal/models/
	cp packaging/linux/codetune-studio.desktop packaging/linux/install-desktop-entry.sh \
	  resources/icons/codetune-studio.png $(PACKAGE_DIR)/
	touch $@

$(PACKAGE_ARCHIVE): $(PACKAGE_EXE)
	tar -C dist -czf $@ codetune-studio
	@du -sh $(PACKAGE_DIR) $@

package-test: package
	packaging/smoke-test.sh $(PACKAGE_ARCHIVE)
