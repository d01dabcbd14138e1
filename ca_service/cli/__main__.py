"""``python -m ca_service.cli``: the same command, under its own name in help texts."""

from ca_service.cli import main

main(prog_name="ca-service")
