"""``trapcount``: the edge agent's command line, a thin layer over the library (click).

``app`` holds the group and what every command shares (one-line errors, the config with
command-line overrides); ``trap`` the commands a trap runs (``run``, ``process``,
``doctor``, ``sync``); ``office`` the reviewer's (``report``, ``export``, ``collect``,
``review``); ``main`` registers them all and is the console-script entry point. Each
command's docstring is its ``--help``; ``TRAPCOUNT_DEBUG=1`` shows the traceback of an
unexpected error.
"""

from edge_agent.cli.main import cli, main

__all__ = ["cli", "main"]
