# Two commands on a fresh machine: `make demo` (train end to end on the generated
# demo corpus) and `make test`. Both create .venv and install requirements first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO := data/demo

PAPER := results/paper
SEEDS := 1,2,3

.PHONY: demo test lint docs paper clean-demo lock

# Installs the exact versions of requirements.lock (every package, transitive too), which
# `make lock` generates from the lower bounds in requirements.txt.
$(VENV)/installed: requirements.txt requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	touch $@

# Re-resolve requirements.lock after editing requirements.txt (for Python 3.11, Linux x86-64).
# Pins that still satisfy requirements.txt are kept; `make lock LOCK_FLAGS=--upgrade` moves
# every package to its newest allowed version. uv runs from its own venv, not from .venv.
LOCK_TOOL := .venv-lock
UV_VERSION := 0.13.9
LOCK_FLAGS ?=

$(LOCK_TOOL)/bin/uv:
	$(PYTHON) -m venv $(LOCK_TOOL)
	$(LOCK_TOOL)/bin/python -m pip install --quiet uv==$(UV_VERSION)

lock: $(LOCK_TOOL)/bin/uv
	$(LOCK_TOOL)/bin/uv pip compile requirements.txt --output-file requirements.lock \
	  --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
	  --custom-compile-command "make lock" --quiet $(LOCK_FLAGS)

# Demo corpus (generated, deterministic) -> IS09 features -> training -> figures -> the HTML report.
demo: $(VENV)/installed
	$(PY) make_demo_corpus.py --out $(DEMO) --overwrite
	$(PY) extract_features.py --manifest $(DEMO)/manifest.csv --out $(DEMO)/features.npz --overwrite
	$(PY) train_attention_lstm.py --recipe recipes/demo.yaml --data $(DEMO)/features.npz --out results/demo --overwrite
	$(PY) attention_visualize.py results/demo
	$(PY) tsne_plot.py results/demo
	$(PY) report.py results/demo --overwrite

# Table 1 (tanh vs ReLU, 3 seeds), Table 2 (confusion) and Figure 2 on the demo corpus; the
# experiments are recipes/paper_tanh.yaml and recipes/paper_relu.yaml (SEEDS overrides their seeds).
paper: $(VENV)/installed
	$(PY) make_demo_corpus.py --out $(DEMO) --overwrite
	$(PY) extract_features.py --manifest $(DEMO)/manifest.csv --out $(DEMO)/features.npz --overwrite
	rm -rf $(PAPER)
	$(PY) train_attention_lstm.py --recipe recipes/paper_tanh.yaml --data $(DEMO)/features.npz --seeds $(SEEDS) --out $(PAPER)/tanh
	$(PY) train_attention_lstm.py --recipe recipes/paper_relu.yaml --data $(DEMO)/features.npz --seeds $(SEEDS) --out $(PAPER)/relu
	$(PY) compare_runs.py $(PAPER)/tanh-seed* $(PAPER)/relu-seed* --by activation --confusion-group --out $(PAPER)/tables.md
	for run in $(PAPER)/tanh-seed1 $(PAPER)/relu-seed1; do \
	  $(PY) attention_visualize.py $$run --out-dir $(PAPER)/figure2-$$(basename $$run) && \
	  $(PY) tsne_plot.py $$run --out-dir $(PAPER)/figure2-$$(basename $$run) || exit 1; \
	done

# `make test`: lint (ruff on every file, mypy on the modules pyproject.toml lists; seconds), the
# documentation site with warnings as errors (about 1 s), then the test suite.
test: lint docs
	$(PY) -m pytest

lint: $(VENV)/installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# The site goes to a scratch folder; `.venv/bin/mkdocs serve` shows it while you edit docs/.
docs: $(VENV)/installed
	site=$$(mktemp -d) && $(VENV)/bin/mkdocs build --strict --quiet --site-dir $$site; status=$$?; rm -rf $$site; exit $$status

clean-demo:
	rm -rf $(DEMO) results/demo

# Speed benchmarks (not part of `make test`): ratios measured in one run on this machine.
# `make bench` (~35 min on 2 cores) rewrites benchmarks/RESULTS.md; `make bench-quick` (~2 min)
# runs smaller workloads and writes a scratch file.
.PHONY: bench bench-quick

bench: $(VENV)/installed
	$(PY) -m pip install --quiet -r benchmarks/requirements.txt
	$(PY) benchmarks/bench.py

bench-quick: $(VENV)/installed
	$(PY) -m pip install --quiet -r benchmarks/requirements.txt
	$(PY) benchmarks/bench.py --quick
