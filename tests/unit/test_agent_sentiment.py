"""The sentiment agent: lexicon with negation, relevance per symbol, recency, the replay file and the item pool."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from triplegain.agents import (
    ItemPool,
    JsonlReplaySource,
    SentimentAgent,
    SentimentContext,
    SentimentSettings,
    SourceError,
    SourceFileError,
    TextItem,
    assess_sentiment,
    lexicon_score,
    score_items,
)
from triplegain.agents.sources import item_id
from triplegain.clock import FakeClock
from triplegain.errors import UserError
from triplegain.model import Bias

NOW = datetime(2024, 1, 2, 12, tzinfo=UTC)
SETTINGS = SentimentSettings()


def item(title: str, *, hours_ago: float = 1.0, symbols: tuple[str, ...] = (), source: str = "wire") -> TextItem:
    published = NOW - timedelta(hours=hours_ago)
    return TextItem(
        id=item_id(source, title, published), source=source, title=title, published_at=published, symbols=symbols
    )


# ------------------------------------------------------------------------------------------------- lexicon


@pytest.mark.parametrize(
    ("text", "sign"),
    [
        ("Bitcoin surges to a record high", 1),
        ("XRP plunges after exchange hack", -1),
        ("Bitcoin is not crashing", 1),
        ("Analysts say there is no rally in sight", -1),
        ("The SEC won't approve the ETF", -1),
        ("Bitcoin hits all-time high", 1),
        ("Weekly market recap", 0),
    ],
)
def test_the_lexicon_reads_direction_and_negation(text: str, sign: int) -> None:
    score = lexicon_score(text)
    assert (score.score > 0) - (score.score < 0) == sign
    assert (score.hits > 0) == (sign != 0)


def test_negation_flips_and_damps() -> None:
    plain, negated = lexicon_score("a crash"), lexicon_score("not a crash")
    assert negated.score == pytest.approx(-0.75 * plain.score, rel=0.5)
    assert 0 < negated.score < -plain.score


def test_negation_reaches_three_words_back_only() -> None:
    assert lexicon_score("no one expected the crash").score < 0  # "no" is four words before "crash"
    assert lexicon_score("no big crash").score > 0


@given(st.text(max_size=300))
def test_any_text_scores_within_bounds(text: str) -> None:
    assert -1.0 <= lexicon_score(text).score <= 1.0


# ----------------------------------------------------------------------------------------------- relevance


def test_items_about_another_asset_are_left_out() -> None:
    items = [
        item("Bitcoin rallies", symbols=("BTC",)),
        item("XRP rallies", symbols=("XRP",)),
        item("Ripple wins its lawsuit"),  # untagged, named by alias
        item("Crypto markets rally"),  # names no asset: general news
    ]
    xrp = {entry.item.title: entry.weight for entry in score_items("XRP/USDT", items, NOW, SETTINGS)}
    assert set(xrp) == {"XRP rallies", "Ripple wins its lawsuit", "Crypto markets rally"}
    assert xrp["Crypto markets rally"] == pytest.approx(SETTINGS.general_item_weight * xrp["XRP rallies"])
    btc = {entry.item.title for entry in score_items("BTC/USDT", items, NOW, SETTINGS)}
    assert btc == {"Bitcoin rallies", "Crypto markets rally"}


def test_tags_win_over_the_text() -> None:
    items = [item("Bitcoin dominance weighs on XRP", symbols=("XRP/USDT",))]
    assert score_items("BTC/USDT", items, NOW, SETTINGS) == []
    assert len(score_items("XRP/USDT", items, NOW, SETTINGS)) == 1


def test_tags_that_name_no_asset_fall_back_to_the_text() -> None:
    items = [item("Bitcoin soars", symbols=("Markets",))]
    assert [entry.weight for entry in score_items("BTC/USDT", items, NOW, SETTINGS)] == [pytest.approx(0.5 ** (1 / 6))]
    assert score_items("XRP/USDT", items, NOW, SETTINGS) == []


def test_weight_halves_with_each_half_life_and_old_or_future_items_are_dropped() -> None:
    items = [
        item("BTC rallies", hours_ago=0),
        item("BTC rallies again", hours_ago=6),
        item("BTC rallies once more", hours_ago=25),  # beyond the 24 h lookback
        item("BTC will rally", hours_ago=-1),  # not published yet
    ]
    weights = {entry.item.title: entry.weight for entry in score_items("BTC/USDT", items, NOW, SETTINGS)}
    assert weights == {"BTC rallies": pytest.approx(1.0), "BTC rallies again": pytest.approx(0.5)}


# ---------------------------------------------------------------------------------------------- assessment


def test_agreeing_fresh_items_give_a_confident_bias() -> None:
    items = [item(title, symbols=("BTC",)) for title in ("BTC surges", "BTC rallies", "Bitcoin soars on ETF approval")]
    baseline = assess_sentiment(score_items("BTC/USDT", items, NOW, SETTINGS), SETTINGS)
    assert baseline.body.bias is Bias.LONG
    assert baseline.body.agreement == 1.0
    assert baseline.confidence > 0.5
    assert baseline.body.drivers[0].title == "Bitcoin soars on ETF approval"


def test_opposed_items_cancel_out_and_lower_the_confidence() -> None:
    items = [item("BTC surges", symbols=("BTC",)), item("BTC crashes", symbols=("BTC",))]
    baseline = assess_sentiment(score_items("BTC/USDT", items, NOW, SETTINGS), SETTINGS)
    assert baseline.body.bias is Bias.NEUTRAL
    assert baseline.body.agreement == pytest.approx(0.0, abs=1e-9)
    assert baseline.confidence == pytest.approx(0.0, abs=1e-9)


def test_no_opinion_means_neutral_at_zero_confidence() -> None:
    baseline = assess_sentiment(score_items("BTC/USDT", [item("BTC weekly recap")], NOW, SETTINGS), SETTINGS)
    assert (baseline.body.bias, baseline.body.score, baseline.confidence) == (Bias.NEUTRAL, 0.0, 0.0)
    assert (baseline.body.items_considered, baseline.body.items_opinionated) == (1, 0)


def test_drivers_are_limited_and_strongest_first() -> None:
    items = [item(f"BTC rallies {index}", hours_ago=index) for index in range(8)]
    baseline = assess_sentiment(score_items("BTC/USDT", items, NOW, SETTINGS), SETTINGS)
    assert [driver.title for driver in baseline.body.drivers] == [f"BTC rallies {index}" for index in range(5)]


@given(
    st.lists(
        st.tuples(st.sampled_from(["BTC surges", "BTC crashes", "BTC recap", "not a BTC crash"]), st.floats(0, 30)),
        max_size=20,
    )
)
def test_score_and_confidence_stay_within_bounds(entries: list[tuple[str, float]]) -> None:
    items = [item(f"{title} {index}", hours_ago=age) for index, (title, age) in enumerate(entries)]
    baseline = assess_sentiment(score_items("BTC/USDT", items, NOW, SETTINGS), SETTINGS)
    assert -1.0 <= baseline.body.score <= 1.0
    assert 0.0 <= baseline.confidence <= 1.0


# ---------------------------------------------------------------------------------------------- replay file


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def line(title: str, published_at: str, **fields: object) -> str:
    return json.dumps({"title": title, "published_at": published_at, **fields})


async def test_a_replay_yields_only_what_was_published_by_now(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "news.jsonl",
        [
            line("third", "2024-01-02T12:00:00Z", id="c"),
            line("first", "2024-01-02T10:00:00Z", id="a", source="coindesk", symbols=["BTC"]),
            "",
            line("second", "2024-01-02T11:00:00+00:00", id="b"),
        ],
    )
    source = JsonlReplaySource(path, name="archive")
    fetched = await source.fetch(NOW - timedelta(hours=24), NOW - timedelta(minutes=30))
    assert [(entry.id, entry.source) for entry in fetched] == [("a", "coindesk"), ("b", "archive")]
    assert fetched[0].symbols == ("BTC",)
    later = await source.fetch(NOW - timedelta(minutes=30), NOW)
    assert [entry.title for entry in later] == ["third"]


async def test_an_item_without_an_id_gets_a_stable_digest(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "news.jsonl", [line("BTC rallies", "2024-01-02T10:00:00Z")])
    [first] = await JsonlReplaySource(path).fetch(NOW - timedelta(days=1), NOW)
    [again] = await JsonlReplaySource(path).fetch(NOW - timedelta(days=1), NOW)
    assert first.id == again.id == item_id("replay", "BTC rallies", first.published_at)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{not json", r"news\.jsonl line 2: not valid JSON"),
        ("[1, 2]", r"news\.jsonl line 2: a JSON object is expected, got list"),
        (line("no zone", "2024-01-02T10:00:00"), r"news\.jsonl line 2: published_at: Input should have timezone"),
        (json.dumps({"published_at": "2024-01-02T10:00:00Z"}), r"news\.jsonl line 2: title: Field required"),
        (line("x", "2024-01-02T10:00:00Z", colour="red"), r"news\.jsonl line 2: colour: Extra inputs"),
    ],
)
def test_a_malformed_line_names_the_file_and_the_line(tmp_path: Path, bad: str, message: str) -> None:
    path = write_lines(tmp_path / "news.jsonl", [line("fine", "2024-01-02T10:00:00Z"), bad])
    with pytest.raises(SourceFileError, match=message):
        JsonlReplaySource(path)


def test_a_missing_replay_file_is_a_user_error(tmp_path: Path) -> None:
    assert issubclass(SourceFileError, UserError)  # the CLI prints it as one line, exit code 2
    with pytest.raises(SourceFileError, match=r"missing\.jsonl: file not found"):
        JsonlReplaySource(tmp_path / "missing.jsonl")


def test_long_text_is_cut_and_whitespace_collapsed() -> None:
    long = item("BTC   rallies\n\t" + "x" * 1000)
    assert long.title.startswith("BTC rallies x")
    assert len(long.title) == 500


# ------------------------------------------------------------------------------------------------ item pool


class CountingSource:
    def __init__(self, name: str, items: list[TextItem], *, fail: bool = False) -> None:
        self.name = name
        self.items = items
        self.fail = fail
        self.fetches = 0

    async def fetch(self, since: datetime, now: datetime) -> tuple[TextItem, ...]:
        self.fetches += 1
        if self.fail:
            raise SourceError(f"{self.name}: HTTP 503 from https://example.invalid/feed")
        return tuple(entry for entry in self.items if since < entry.published_at <= now)

    async def aclose(self) -> None:
        return None


async def test_the_pool_polls_once_per_interval_for_every_symbol() -> None:
    source = CountingSource("wire", [item("BTC rallies")])
    pool = ItemPool([source], poll_interval=timedelta(minutes=5), lookback=timedelta(hours=24))
    await pool.items(NOW)
    await pool.items(NOW + timedelta(minutes=4))
    assert source.fetches == 1
    await pool.items(NOW + timedelta(minutes=5))
    assert source.fetches == 2


async def test_a_failing_source_keeps_its_earlier_items_and_is_counted() -> None:
    source = CountingSource("wire", [item("BTC rallies")])
    pool = ItemPool([source], poll_interval=timedelta(0), lookback=timedelta(hours=24))
    assert len(await pool.items(NOW)) == 1
    source.fail = True
    assert len(await pool.items(NOW + timedelta(minutes=1))) == 1
    [stats] = pool.stats()
    assert (stats.polls, stats.failures, stats.items) == (2, 1, 1)
    assert stats.last_error == "wire: HTTP 503 from https://example.invalid/feed"
    assert await pool.items(NOW + timedelta(hours=30)) == ()


async def test_the_same_item_from_two_polls_is_kept_once() -> None:
    source = CountingSource("wire", [item("BTC rallies")])
    pool = ItemPool([source], poll_interval=timedelta(0), lookback=timedelta(hours=24))
    await pool.items(NOW)
    assert len(await pool.items(NOW + timedelta(minutes=1))) == 1


async def test_the_agent_reads_the_pool_at_the_clock_time() -> None:
    clock = FakeClock(NOW)
    source = CountingSource("wire", [item("BTC rallies", symbols=("BTC",)), item("XRP crashes", symbols=("XRP",))])
    pool = ItemPool.from_settings(SETTINGS, [source])
    agent = SentimentAgent(SETTINGS, clock=clock, pool=pool)
    btc = await agent.analyze(SentimentContext("BTC/USDT"))
    xrp = await agent.analyze(SentimentContext("XRP/USDT"))
    assert (btc.symbol, btc.body.bias, btc.timestamp) == ("BTC/USDT", Bias.LONG, NOW)
    assert (xrp.symbol, xrp.body.bias) == ("XRP/USDT", Bias.SHORT)
    assert [driver.title for driver in xrp.body.drivers] == ["XRP crashes"]
    assert source.fetches == 1
