"""``WHERE`` clauses assembled only from fixed fragments, each value sent as a ``$n`` parameter.

Every fragment is a string literal of a review query module (``tests/faults/test_sql_parameterised.py`` checks
it), so no text a user typed ever becomes SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class Where:
    """A conjunction of fixed fragments; ``{}`` in a fragment becomes the next ``$n``, its value a parameter."""

    def __init__(self, args: Sequence[Any] = ()) -> None:
        self.args: list[Any] = list(args)
        self._fragments: list[str] = []

    def param(self, value: Any) -> str:
        """``value`` as the next parameter; its placeholder (``$n``)."""
        self.args.append(value)
        return f"${len(self.args)}"

    def add(self, fragment: str, *values: Any) -> None:
        self._fragments.append(fragment.format(*(self.param(value) for value in values)))

    def sql(self) -> str:
        return f"WHERE {' AND '.join(self._fragments)}" if self._fragments else ""
