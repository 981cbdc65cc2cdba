"""The table of topics in docs/ARCHITECTURE.md and in the bus's docstring name every topic there is, with the
default TTL and priority the code gives it: the design a reader trusts is the code's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import triplegain.bus
from triplegain.bus import Topic
from triplegain.bus.settings import TopicsSettings

pytestmark = pytest.mark.timeout(10)

ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "ARCHITECTURE.md"
AGENT_TOPICS = {Topic.TA_SIGNALS, Topic.REGIME_UPDATES, Topic.SENTIMENT_UPDATES, Topic.PORTFOLIO_UPDATES}


def _default_ttl(topic: Topic) -> str:
    seconds = getattr(TopicsSettings(), topic.value).ttl_seconds
    return f"{seconds:g} s"


def test_the_architecture_table_matches_the_topics() -> None:
    rows = [
        [cell.strip(" `") for cell in line.strip("|").split("|")]
        for line in ARCHITECTURE.read_text(encoding="utf-8").splitlines()
        if re.match(r"\| `[a-z_]+` \|", line)
    ]
    assert sorted(row[0] for row in rows) == sorted(topic.value for topic in Topic)
    for row in rows:
        topic = Topic(row[0])
        assert row[4] == ("the agent's `valid_seconds`".strip("`") if topic in AGENT_TOPICS else _default_ttl(topic))


def test_the_bus_docstring_table_matches_the_topics() -> None:
    doc = triplegain.bus.__doc__ or ""
    rules = [number for number, line in enumerate(doc.splitlines()) if line.strip().startswith("=====")]
    body = doc.splitlines()[rules[1] + 1 : rules[2]]  # between the rule under the header and the last one
    rows = [line.split() for line in body if re.match(r"\s{4}[a-z_]+\s", line)]
    assert sorted(row[0] for row in rows) == sorted(topic.value for topic in Topic)
    for row in rows:
        topic = Topic(row[0])
        ttl = " ".join(row[-3:-1]) if row[-2] == "s" else row[-2]
        assert ttl == ("view" if topic in AGENT_TOPICS else _default_ttl(topic))
