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

.PHONY: setup run test lint typecheck contracts pytest test-headless test-slow bench clean verify-llamacpp

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

# Optional (not CI): greedy tokens of a GGUF export in llama.cpp vs the source model. Builds
# llama-cpp-python from source the first time (several minutes). EXPORT=the export folder.
verify-llamacpp: setup
	$(BIN)/python -m pip install -e ".[llamacpp]"
	$(BIN)/python benchmarks/llamacpp_greedy.py $(EXPORT)

clean:
	rm -rf $(VENV) build dist .mypy_cache .pytest_cache .ruff_cache
