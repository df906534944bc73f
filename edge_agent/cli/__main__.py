"""``python -m edge_agent.cli``: the ``trapcount`` command."""

from edge_agent.cli.main import main

main()
