"""The store's errors: one line each, fit for the command line."""

from __future__ import annotations


class StoreError(RuntimeError):
    """The database cannot be opened or used; the message is one line."""


class SchemaTooNewError(StoreError):
    """The database was written by a newer trapcount than this one."""
