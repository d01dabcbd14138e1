"""``python -m ca_service.cli``."""

from ca_service.cli import main

main()
