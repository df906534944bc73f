"""The schema revision this trapcount's migrations end at (edge_agent/store/migrations):
written out, so that adding a migration without meaning to shows in the tests."""

HEAD = "0008"
