"""A small engine for set-based, chunked backfills of a foreign key from a relation path.

- :class:`Backfill` declares what to fill and where the value comes from;
- :class:`Compiler` turns it into SQL for one backend (via :mod:`.dialects`);
- :class:`Runner` plans id-range chunks and runs each in its own transaction.
"""

from .compiler import Compiler
from .dialects import dialect_for
from .runner import Runner
from .spec import Backfill

__all__ = ["Backfill", "Compiler", "Runner", "dialect_for"]
