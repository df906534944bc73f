"""``trapcount``: the edge agent's command line, a thin layer over the library (click).

``app`` holds the group, the one-line error handling and the console-script entry point;
``trap`` the commands a trap runs (``run``, ``process``, ``doctor``, ``sync``); ``office``
the reviewer's (``report``, ``export``, ``collect``, ``review``). Importing this package
registers them all.
"""

from edge_agent.cli.app import cli, main

__all__ = ["cli", "main"]
