# Two commands for a new user: `make demo` and `make test`. Both build the
# virtual environment from scratch when it is missing; the demo installs only
# jaccli and the onnx extra its ONNX example reads, the tests add the test extra.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export NO_COLOR ?=

.PHONY: demo test test-ci bench figures cli-reference install clean

$(BIN)/activate: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --quiet --upgrade pip
	$(BIN)/pip install --quiet --quiet -e '.[onnx]'
	touch $(BIN)/activate

$(VENV)/.test-extra: $(BIN)/activate
	$(BIN)/pip install --quiet --quiet -e '.[test]'
	touch $@

# a development install: jaccli and the test extra
install: $(VENV)/.test-extra

demo: $(BIN)/activate
	@echo '$$ jaccli jacobian sample_models/canonical.npz --at 1,1 --quiet'
	@$(BIN)/jaccli jacobian sample_models/canonical.npz --at 1,1 --quiet
	@echo
	@echo '$$ jaccli hessdiag sample_models/sincos.npz --points sample_models/sincos_points.csv'
	@$(BIN)/jaccli hessdiag sample_models/sincos.npz --points sample_models/sincos_points.csv
	@echo
	@echo 'The same points with the true derivatives of the function the net was trained on:'
	@$(BIN)/python sample_models/compare_sincos.py
	@echo
	@echo '$$ jaccli confint sample_models/noisy.npz --train sample_models/noisy_train.csv --points sample_models/noisy_points.csv --quiet'
	@$(BIN)/jaccli confint sample_models/noisy.npz --train sample_models/noisy_train.csv --points sample_models/noisy_points.csv --quiet
	@echo
	@echo 'A PyTorch model exported to ONNX (torch.onnx.export), read with no spec:'
	@echo '$$ jaccli jacobian sample_models/torch_gelu.onnx --at 0.5,-1,2 --quiet'
	@$(BIN)/jaccli jacobian sample_models/torch_gelu.onnx --at 0.5,-1,2 --quiet

# -rs: the reason of every skipped test (an optional package not installed)
test: install
	$(BIN)/python -m pytest -q -rs

# CI (.ci/run): a fresh virtual environment, no pip cache, the newest release of every
# dependency, plus every framework the tests compare with (the ci extra); the whole suite
# with nothing skipped for a missing framework (JACCLI_REQUIRE_FRAMEWORKS=1 turns such a
# skip into a failure, tests/conftest.py), the property tests derandomized at full
# strength (CI=1) and the differential tests over JACCLI_DIFF_EXAMPLES architectures per
# export path.
CI_VENV := .venv-ci
CI_PIP := $(CI_VENV)/bin/pip install --quiet --no-cache-dir --upgrade

test-ci:
	rm -rf $(CI_VENV)
	$(PYTHON) -m venv $(CI_VENV)
	$(CI_PIP) pip
	$(CI_PIP) -e '.[ci]'
	$(CI_VENV)/bin/pip list --format=freeze
	CI=1 JACCLI_REQUIRE_FRAMEWORKS=1 JACCLI_DIFF_EXAMPLES=200 KERAS_BACKEND=torch \
		$(CI_VENV)/bin/python -m pytest -q -rs

# The bench extra (JAX, torch CPU) installs on first use; without it the
# JAX and torch.func columns are skipped. Timings: bench/results.json.
$(VENV)/.bench-extra: $(BIN)/activate
	$(BIN)/pip install --quiet -e '.[test,bench]' || echo 'bench extra not installed: JAX/torch columns skipped'
	touch $@

bench: $(VENV)/.bench-extra
	$(BIN)/python -m bench

# The pictures in docs/figures/, drawn by the commands the docs show beside them
# (each console example with --plot NAME.png); needs the plot extra (in the test extra).
figures: install
	$(BIN)/python docs/make_figures.py

# docs/cli.md, every command's --help (docs/make_cli_reference.py); run it after changing
# a command, an option or a help text (tests/test_cli_reference.py fails until then).
cli-reference: $(BIN)/activate
	$(BIN)/python docs/make_cli_reference.py

clean:
	rm -rf $(VENV) $(CI_VENV) .pytest_cache .hypothesis
