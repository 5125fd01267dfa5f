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
# yes: install the exact, hashed versions of packaging/locks/ (Python 3.11, Linux x86_64);
# none: the newest versions pyproject.toml's ranges allow (other platforms and Pythons).
LOCK ?= yes
LOCKS := packaging/locks
LOCK_FILES := $(LOCKS)/cpu.txt $(LOCKS)/cuda.txt
# Where `make lock` finds the CPU build of torch: pip's configured find-links folder if it has
# one (a local wheel), else TORCH_CPU_INDEX.
LOCK_FIND_LINKS ?= $(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null)
# UPGRADE=1 makes `make lock` take the newest allowed version of everything, not only of what
# pyproject.toml added or changed.
UPGRADE ?=
LATEST_VENV ?= .venv-latest
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
ARGS ?=

.PHONY: setup run test lint typecheck contracts pytest test-headless test-slow bench clean lock \
	test-latest soak reliability verify-llamacpp package package-test

setup: $(STAMP)

$(STAMP): pyproject.toml $(LOCK_FILES) $(LOCKS)/torch.in $(LOCKS)/build.in
	PYTHON=$(PYTHON) TORCH_CPU_INDEX=$(TORCH_CPU_INDEX) packaging/install_env.sh $(VENV) $(TORCH) $(LOCK)
	touch $@

# Recompile both locks from pyproject.toml (one command; rerun it whenever a dependency or an
# extra changes, and commit packaging/locks/). Pins already in a lock are kept unless UPGRADE=1.
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/uv || $(BIN)/python -m pip install "uv>=0.5"
	UV=$(BIN)/uv PYTHON=$(PYTHON) FIND_LINKS="$(LOCK_FIND_LINKS)" TORCH_CPU_INDEX=$(TORCH_CPU_INDEX) \
	  UPGRADE=$(UPGRADE) packaging/lock.sh

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

# The release soak: the real window trains the quickstart recipe under Xvfb for SOAK_MINUTES,
# then a screenshot lands in shots/soak/; fails if the window dies or the run stops training.
SOAK_MINUTES ?= 5
XVFB_RUN ?= xvfb-run -a -s "-screen 0 1600x1000x24"
soak: setup
	env -u QT_QPA_PLATFORM $(XVFB_RUN) $(BIN)/python benchmarks/soak_window.py \
	  --minutes $(SOAK_MINUTES) --shots shots/soak

# The suite against the newest versions pyproject.toml allows, in a fresh venv of its own, so that
# a breaking release shows up here before a user installs it (torch stays at the pinned CPU build
# unless TORCH=cuda).
test-latest:
	rm -rf $(LATEST_VENV)
	$(MAKE) --no-print-directory setup VENV=$(LATEST_VENV) LOCK=none
	$(LATEST_VENV)/bin/python -m pip freeze --exclude-editable > $(LATEST_VENV)/versions.txt
	@echo "versions under test: $(LATEST_VENV)/versions.txt"
	$(MAKE) --no-print-directory test-headless pytest VENV=$(LATEST_VENV) LOCK=none

bench: setup
	$(BIN)/python benchmarks/metrics_insert.py

# Kill/resume (20 trials), outages, concurrency, hostile plugins; prints a report. CI runs the
# same tests with 3 kill trials as part of `make test`. TRIALS=N to change.
TRIALS ?= 20
reliability: setup
	$(BIN)/python -m tests.reliability.report --trials $(TRIALS)

# Optional (not CI): greedy tokens of a GGUF export in llama.cpp vs the source model. Builds
# llama-cpp-python from source the first time (several minutes). EXPORT=the export folder.
verify-llamacpp: setup
	$(BIN)/python -m pip install -e ".[llamacpp]"
	$(BIN)/python benchmarks/llamacpp_greedy.py $(EXPORT)

clean:
	rm -rf $(VENV) $(LATEST_VENV) build dist .mypy_cache .pytest_cache .ruff_cache

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

package: $(PACKAGE_ARCHIVE)

$(PACKAGE_EXE): $(STAMP) $(PACKAGE_SOURCES)
	$(BIN)/python -c "import PyInstaller" 2>/dev/null || \
	  $(BIN)/python -m pip install "pyinstaller>=6.10"
	$(BIN)/python packaging/stage.py record $(PACKAGE_STAGE) --torch $(PACKAGE_TORCH)
	rm -rf $(PACKAGE_DIR)
	CODETUNE_PACKAGE_STAGE=$(PACKAGE_STAGE) CODETUNE_PACKAGE_TORCH=$(PACKAGE_TORCH) \
	  $(BIN)/pyinstaller --noconfirm --log-level WARN --distpath dist --workpath build/pyinstaller \
	  packaging/codetune-studio.spec
	$(BIN)/python packaging/stage.py starter $(PACKAGE_STAGE)
	mkdir -p $(PACKAGE_DIR)/_internal/models
	cp -r $(PACKAGE_STAGE)/models/starter-v2 $(PACKAGE_DIR)/_internal/models/
	cp packaging/linux/codetune-studio.desktop packaging/linux/install-desktop-entry.sh \
	  resources/icons/codetune-studio.png $(PACKAGE_DIR)/
	touch $@

$(PACKAGE_ARCHIVE): $(PACKAGE_EXE)
	tar -C dist -czf $@ codetune-studio
	@du -sh $(PACKAGE_DIR) $@

package-test: package
	packaging/smoke-test.sh $(PACKAGE_ARCHIVE)
