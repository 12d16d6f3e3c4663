# Two commands on a fresh machine: `make demo` (train end to end on the generated
# demo corpus) and `make test`. Both create .venv and install requirements first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO := data/demo

.PHONY: demo test clean-demo

$(VENV)/installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

demo: $(VENV)/installed
	$(PY) make_demo_corpus.py --out $(DEMO) --overwrite
	$(PY) extract_features.py --manifest $(DEMO)/manifest.csv --out $(DEMO)/features.npz
	$(PY) train_attention_lstm.py --data $(DEMO)/features.npz --out results/demo --overwrite

test: $(VENV)/installed
	$(PY) -m pytest

clean-demo:
	rm -rf $(DEMO) results/demo
