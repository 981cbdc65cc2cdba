from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from structlog.testing import capture_logs

from triplegain.errors import UserError
from triplegain.market.candle import (
    Candle,
    CandleRejects,
    Rejection,
    RejectReason,
    Timeframe,
    TimeframeError,
    candle_from_values,
    ms_from_utc,
    parse_timeframe,
    utc_from_ms,
)

OPEN_MS = 1_672_677_900_000  # 2023-01-02 16:45 UTC


def make_candle(**changes: object) -> Candle:
    values: dict[str, object] = {
        "symbol": "BTC/USDT",
        "timeframe": "5m",
        "open_time": utc_from_ms(OPEN_MS),
        "open": 100.0,
        "high": 110.0,
        "low": 95.0,
        "close": 105.0,
        "volume": 3.5,
    }
    values.update(changes)
    return Candle.model_validate(values)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1m", 60), ("5m", 300), ("15m", 900), ("1h", 3600), ("4h", 14_400), ("1d", 86_400)],
)
def test_timeframes_parse_to_durations(text: str, seconds: int) -> None:
    timeframe = parse_timeframe(text)
    assert timeframe.value == text
    assert timeframe.seconds == seconds
    assert timeframe.milliseconds == seconds * 1000
    assert timeframe.duration == timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", ["7m", "1M", "", "5 minutes", 5, None])
def test_a_bad_timeframe_names_the_value_and_what_is_allowed(bad: object) -> None:
    with pytest.raises(TimeframeError) as raised:
        parse_timeframe(bad)
    assert str(raised.value) == f"timeframe {bad!r} is not supported; allowed: 1m, 5m, 15m, 1h, 4h, 1d"
    assert isinstance(raised.value, UserError)


def test_a_bad_timeframe_in_a_model_is_a_validation_error_with_the_same_message() -> None:
    with pytest.raises(ValidationError, match=r"timeframe '2h' is not supported; allowed: 1m, 5m"):
        make_candle(timeframe="2h")


def test_a_valid_candle_knows_its_close_time_and_epoch_milliseconds() -> None:
    candle = make_candle()
    assert candle.timeframe is Timeframe.M5
    assert candle.open_time == datetime(2023, 1, 2, 16, 45, tzinfo=UTC)
    assert candle.close_time == datetime(2023, 1, 2, 16, 50, tzinfo=UTC)
    assert candle.open_time_ms == OPEN_MS
    with pytest.raises(ValidationError, match="frozen"):
        candle.close = 1.0  # type: ignore[misc]


def test_open_time_must_be_aware_and_is_stored_as_utc() -> None:
    with pytest.raises(ValidationError, match="timezone-aware"):
        make_candle(open_time=datetime(2023, 1, 2, 16, 45))
    shifted = make_candle(open_time=datetime(2023, 1, 2, 17, 45, tzinfo=timezone(timedelta(hours=1))))
    assert shifted.open_time == datetime(2023, 1, 2, 16, 45, tzinfo=UTC)
    assert shifted.open_time.tzinfo is UTC


@pytest.mark.parametrize(
    ("changes", "reason", "detail"),
    [
        ({"close": math.nan}, RejectReason.NOT_FINITE, "close is nan"),
        ({"high": math.inf}, RejectReason.NOT_FINITE, "high is inf"),
        ({"volume": math.inf}, RejectReason.NOT_FINITE, "volume is inf"),
        ({"low": 0.0}, RejectReason.NON_POSITIVE_PRICE, "low is 0.0, prices must be > 0"),
        ({"open": -1.0, "low": -2.0}, RejectReason.NON_POSITIVE_PRICE, "open is -1.0"),
        ({"volume": -0.5}, RejectReason.NEGATIVE_VOLUME, "volume is -0.5, must be ≥ 0"),
        ({"high": 104.0}, RejectReason.HIGH_BELOW_BODY, "high 104.0 is below max(open, close) 105.0"),
        ({"low": 101.0}, RejectReason.LOW_ABOVE_BODY, "low 101.0 is above min(open, close) 100.0"),
    ],
)
def test_a_bad_candle_is_rejected_with_a_reason(changes: dict[str, float], reason: RejectReason, detail: str) -> None:
    values = {"open": 100.0, "high": 110.0, "low": 95.0, "close": 105.0, "volume": 3.5} | changes
    result = candle_from_values(
        "BTC/USDT",
        Timeframe.M5,
        OPEN_MS,
        values["open"],
        values["high"],
        values["low"],
        values["close"],
        values["volume"],
        source="data.csv line 17",
    )
    assert isinstance(result, Rejection)
    assert result.reason is reason
    assert detail in result.detail
    assert result.describe().startswith(f"BTC/USDT 5m 2023-01-02T16:45:00+00:00 (data.csv line 17): {reason.value} — ")
    with pytest.raises(ValidationError, match=r"high|low|open|close|volume"):
        make_candle(**changes)


def test_a_candle_from_values_equals_the_fully_validated_one() -> None:
    result = candle_from_values("BTC/USDT", Timeframe.M5, OPEN_MS, 100.0, 110.0, 95.0, 105.0, 3.5)
    assert result == make_candle()
    flat = candle_from_values("BTC/USDT", Timeframe.M5, OPEN_MS, 1.0, 1.0, 1.0, 1.0, 0.0)
    assert isinstance(flat, Candle)


def test_milliseconds_convert_exactly_both_ways() -> None:
    moment = utc_from_ms(1_570_752_060_123)
    assert moment == datetime(2019, 10, 11, 0, 1, 0, 123_000, tzinfo=UTC)
    assert ms_from_utc(moment) == 1_570_752_060_123


prices = st.one_of(
    st.floats(min_value=1e-6, max_value=1e6),
    st.sampled_from([0.0, -1.0, math.nan, math.inf, -math.inf]),
)


@settings(max_examples=200, deadline=None)
@given(open_=prices, high=prices, low=prices, close=prices, volume=prices)
def test_the_cheap_check_agrees_with_full_validation(
    open_: float, high: float, low: float, close: float, volume: float
) -> None:
    result = candle_from_values("ETH/BTC", Timeframe.H1, OPEN_MS, open_, high, low, close, volume)
    try:
        validated: Candle | None = make_candle(
            symbol="ETH/BTC", timeframe="1h", open=open_, high=high, low=low, close=close, volume=volume
        )
    except ValidationError:
        validated = None
    if validated is None:
        assert isinstance(result, Rejection)
    else:
        assert result == validated


def test_rejects_are_counted_by_reason_logged_and_the_last_ones_kept() -> None:
    rejects = CandleRejects(keep=2, feed="replay")
    reasons = [RejectReason.DUPLICATE, RejectReason.NOT_FINITE, RejectReason.DUPLICATE]
    with capture_logs() as logs:
        for number, reason in enumerate(reasons):
            rejects.record(
                Rejection(reason, f"detail {number}", "XRP/ETH", Timeframe.M1, utc_from_ms(OPEN_MS), f"line {number}")
            )
    assert rejects.total == 3
    assert rejects.by_reason() == {"not_finite": 1, "duplicate": 2}
    assert [rejection.detail for rejection in rejects.recent()] == ["detail 1", "detail 2"]
    assert [entry["reason"] for entry in logs] == ["duplicate", "not_finite", "duplicate"]
    assert {key: logs[0][key] for key in ("log_level", "event", "feed", "source")} == {
        "log_level": "warning",
        "event": "candle rejected",
        "feed": "replay",
        "source": "line 0",
    }
