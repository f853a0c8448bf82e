"""`python -m strongroom` runs the command line (the detached sandbox starts itself this way)."""

from strongroom.cli.main import main

main()
