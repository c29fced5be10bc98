# Two commands do all the set-up on a fresh machine:
#   make demo   - install into .venv, then train a small Sokoban agent on the CPU (SFT warm start + LOOP)
#   make test   - install into .venv, then run the whole test suite
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
export OMP_WAIT_POLICY := PASSIVE
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml environments/sokoban/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -e ".[test]" -e environments/sokoban
	touch $@

demo: install
	$(VENV)/bin/accelerate launch --config_file launch/accelerate_cpu.yaml recipes/loop_sokoban.py --preset cpu $(ARGS)

test: install
	$(PY) -m pytest -q $(ARGS)

bench: install
	$(PY) bench/rollout_overhead.py

clean:
	rm -rf $(VENV) runs
