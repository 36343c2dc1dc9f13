"""`cnnlab reproduce`: the papers' training results, each with its recipe and deviations."""

from .entries import ENTRIES, Entry
from .runner import reproduce

__all__ = ["ENTRIES", "Entry", "reproduce"]
