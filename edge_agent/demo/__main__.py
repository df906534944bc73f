"""``python -m edge_agent.demo``: ``make demo``."""

import sys

from edge_agent.demo.sample import main

sys.exit(main())
