"""Where every attempt's ``LLMCallRecord`` goes: the ``llm_calls`` table in production (``store.llm_calls``)."""

from __future__ import annotations

from typing import Protocol

from triplegain.llm.models import LLMCallRecord


class CallLog(Protocol):
    """Keeps call records.

    ``record`` should not fail for a passing database problem (buffer and retry instead): the gateway lets any
    exception from it propagate, so a failing log fails the call rather than losing its record silently.
    """

    async def record(self, call: LLMCallRecord) -> None: ...
