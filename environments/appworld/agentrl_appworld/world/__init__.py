"""The offline world builder. Runs only inside AppWorld's venv (`python -m agentrl_appworld.world.build`)."""
