"""The ``dead_letters`` table: the bus's ``on_dead_letter`` hook on the batching writer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from triplegain.store.records import DeadLetterRow
from triplegain.store.writer import BatchWriter

if TYPE_CHECKING:
    from triplegain.bus.dead_letters import DeadLetter, DeadLetterHook


def dead_letter_hook(writer: BatchWriter) -> DeadLetterHook:
    """A sync hook for ``MessageBus(on_dead_letter=…)`` that hands each dead letter to the writer.

    It never waits. When the writer refuses the row (``WriteBufferFull``), the bus counts and logs the hook's
    error and keeps the letter in its own dead-letter box.
    """

    def record(letter: DeadLetter) -> None:
        writer.submit(DeadLetterRow(letter))

    return record
