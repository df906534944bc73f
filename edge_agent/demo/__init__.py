"""Demo: the scene generator (synthetic camera-trap videos and photo bursts with known
truth, for tests and benchmarks) and ``make demo`` (``python -m edge_agent.demo``)."""
