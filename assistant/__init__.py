"""A chat assistant that answers questions about a corpus of articles, with citations."""

from assistant import offline as _offline

_offline.apply()

__version__ = "0.1.0"
