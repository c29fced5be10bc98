#!/usr/bin/env bash
# Start one OpenAI-compatible vLLM server for agentrl's `vllm_server` engine.
#   launch/vllm_server.sh --model MODEL [--host 127.0.0.1] [--port 8000] [--tensor-parallel-size N] [--lora-rank R]
# Extra flags go to vLLM unchanged. Point the trainer at it: --engine.backend vllm_server --engine.urls http://127.0.0.1:8000
set -euo pipefail
PYTHON="${PYTHON:-python}"
exec "$PYTHON" -m agentrl.engines.vllm_launch "$@"
