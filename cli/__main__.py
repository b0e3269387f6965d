"""`python -m durable.cli` is `durable`."""

from durable.cli.main import main

main()
