"""Helpers for the edge agent's storage, service and CLI tests (real files, real models)."""
