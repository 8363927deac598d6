"""`python -m iotsim ...` is the `iotsim` command."""

from iotsim.cli import main

main()
