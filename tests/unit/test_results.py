"""The results arithmetic (``triplegain.review.results``) against an example worked out by hand.

Starting equity 10,000 USDT; three UTC days from 2024-01-01 00:00 (D1), D2, D3. The fills, in order:

    BTC  D1 00:00  buy  0.1 @ 20,000  fee  8.0   (notional 2,000)
    BTC  D1 06:00  sell 0.1 @ 22,000  fee  8.8   take-profit          (2,200)
    ETH  D1 12:00  buy  1   @  1,500  fee  6.0                        (1,500)
    BTC  D2 00:00  buy  0.2 @ 21,000  fee 16.8                        (4,200)
    ETH  D2 00:00  sell 0.5 @  1,600  fee  3.2   a decision's order   (  800)
    BTC  D2 12:00  sell 0.2 @ 20,000  fee 16.0   stop-loss            (4,000)
    ETH  D3 00:00  sell 0.5 @  1,700  fee  3.4   halt --flatten       (  850)
    ETH  D3 00:00  buy  1   @  1,700  fee  6.8   (still open)         (1,700)

Round trips:

    BTC long 0.1  20,000 → 22,000   (22,000 − 20,000) × 0.1 − 8 − 8.8        = 200 − 16.8   =  183.20  target  6 h
    ETH long 1     1,500 → 1,650    0.5 × 100 + 0.5 × 200 − 6 − 3.2 − 3.4    = 150 − 12.6   =  137.40  flatten 36 h
    BTC long 0.2  21,000 → 20,000   (20,000 − 21,000) × 0.2 − 16.8 − 16       = −200 − 32.8  = −232.80  stop    12 h
    ETH long 1     1,700, open      at the last price 1,750: 50 − 6.8                         =   43.20  open

Closed: 3; wins 2 (183.20, 137.40), losses 1 (−232.80): win rate 2/3.
Gross profit 320.60, gross loss −232.80: profit factor 320.60 / 232.80 = 1.377148.
Average win 320.60 / 2 = 160.30; average loss −232.80; expectancy (183.20 + 137.40 − 232.80) / 3 = 87.80 / 3 = 29.2667.
Fees 8 + 8.8 + 6 + 16.8 + 3.2 + 16 + 3.4 + 6.8 = 69.00, 0.69 % of 10,000.
Turnover 2,000 + 2,200 + 1,500 + 4,200 + 800 + 4,000 + 850 + 1,700 = 17,250, 1.725 × the starting equity.

Equity snapshots: D1 00:00 10,000 · D1 12:00 10,200 · D2 00:00 9,900 · D2 12:00 9,950 · D3 00:00 10,300 ·
D3 12:00 10,100. The period is D1 00:00 … D3 12:00 = 60 h.

Time in market: BTC 0–6 h and 24–36 h = 18 h of 60 = 30 %; ETH 12–48 h and 48–60 h (open) = 48 h = 80 %; any
position: [0, 6] ∪ [12, 60] = 54 h = 90 %.
Max drawdown: peak 10,200 (D1 12:00) to 9,900 (D2 00:00): 300 / 10,200 = 2.941176 %. Under water from D1 12:00
until 10,300 at D3 00:00: 36 h (then D3 00:00 to the end, 12 h, is shorter).
Daily returns (each day's last equity): D1 10,200 / 10,000 − 1 = +0.02; D2 9,950 / 10,200 − 1 = −0.0245098;
D3 10,100 / 9,950 − 1 = +0.0150754. Mean 0.0105656 / 3 = 0.00352186. Sample deviation: squares of (0.0164781,
−0.0280317, 0.0115535) sum to 0.00119079, / 2 = 0.000595394, √ = 0.0244007: Sharpe 0.00352186 / 0.0244007 × √365
(19.10497) = 2.75750. Downside deviation √(0.0245098² / 3) = √(0.000200240) = 0.0141507: Sortino 0.00352186 /
0.0141507 × 19.10497 = 4.75487.
Buy and hold: 5,000 in BTC at 20,000 → 21,000 = 5,250; 5,000 in ETH at 1,500 → 1,750 = 5,833.33; 11,083.33.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from triplegain.review.results import ExitReason, ResultEvent, ResultFill, results

D1 = datetime(2024, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def fill(symbol: str, side: str, qty: float, price: float, fee: float, hours: float, kind: str = "") -> ResultFill:
    order_type = {"target": "take_profit", "stop": "stop_loss"}.get(kind, "market")
    reason = {"flatten": "flatten: operator:ana: end of test", "breaker": "flatten: breaker:max_drawdown: 15 %"}
    return ResultFill(
        symbol=symbol,
        side=side,
        qty=qty,
        price=price,
        fee=fee,
        ts=D1 + hours * HOUR,
        order_type=order_type,
        from_decision=kind in ("", "signal"),
        order_reason=reason.get(kind, "a decision"),
    )


FILLS = [
    fill("BTC/USDT", "buy", 0.1, 20_000, 8.0, 0),
    fill("BTC/USDT", "sell", 0.1, 22_000, 8.8, 6, "target"),
    fill("ETH/USDT", "buy", 1, 1_500, 6.0, 12),
    fill("BTC/USDT", "buy", 0.2, 21_000, 16.8, 24),
    fill("ETH/USDT", "sell", 0.5, 1_600, 3.2, 24, "signal"),
    fill("BTC/USDT", "sell", 0.2, 20_000, 16.0, 36, "stop"),
    fill("ETH/USDT", "sell", 0.5, 1_700, 3.4, 48, "flatten"),
    fill("ETH/USDT", "buy", 1, 1_700, 6.8, 48),
]
SNAPSHOTS = ((0, 10_000), (12, 10_200), (24, 9_900), (36, 9_950), (48, 10_300), (60, 10_100))
EQUITY = [(D1 + hours * HOUR, float(value)) for hours, value in SNAPSHOTS]
FIRST = {"BTC/USDT": 20_000.0, "ETH/USDT": 1_500.0}
LAST = {"BTC/USDT": 21_000.0, "ETH/USDT": 1_750.0}
HALT = ResultEvent(ts=D1 + 40 * HOUR, kind="breaker trip", what="max_drawdown (halt)", cause="drawdown 15 %")


def test_the_hand_worked_example() -> None:
    worked = results(FILLS, EQUITY, FIRST, LAST, [HALT], 10_000.0, {"BTC/USDT": 0.00001, "ETH/USDT": 0.0001})

    trips = [(t.symbol, t.side, t.quantity, t.entry, t.exit, t.pnl, t.reason, t.duration) for t in worked.trips]
    assert trips == [
        ("BTC/USDT", "long", 0.1, 20_000, 22_000, pytest.approx(183.2), ExitReason.TARGET, 6 * HOUR),
        ("ETH/USDT", "long", 1, 1_500, 1_650, pytest.approx(137.4), ExitReason.FLATTEN, 36 * HOUR),
        ("BTC/USDT", "long", 0.2, 21_000, 20_000, pytest.approx(-232.8), ExitReason.STOP, 12 * HOUR),
        ("ETH/USDT", "long", 1, 1_700, None, pytest.approx(43.2), ExitReason.OPEN, None),
    ]
    total = worked.total
    assert (total.closed, total.open, total.wins, total.losses) == (3, 1, 2, 1)
    assert total.win_rate == pytest.approx(2 / 3)
    assert total.gross_profit == pytest.approx(320.6)
    assert total.gross_loss == pytest.approx(-232.8)
    assert total.profit_factor == pytest.approx(1.377148, abs=1e-6)
    assert total.average_win == pytest.approx(160.3)
    assert total.average_loss == pytest.approx(-232.8)
    assert total.expectancy == pytest.approx(29.2667, abs=1e-4)
    assert total.net_pnl == pytest.approx(87.8)
    assert total.fees == pytest.approx(69.0)
    assert worked.fees_pct_of_start == pytest.approx(0.69)
    assert total.turnover == pytest.approx(17_250)
    assert worked.turnover_multiple == pytest.approx(1.725)
    assert total.time_in_market == pytest.approx(0.9)
    assert total.exits == {"target": 1, "flatten": 1, "stop": 1}

    btc, eth = worked.by_symbol["BTC/USDT"], worked.by_symbol["ETH/USDT"]
    assert (btc.closed, btc.wins, btc.net_pnl, btc.time_in_market) == (2, 1, pytest.approx(-49.6), pytest.approx(0.3))
    assert (eth.closed, eth.open, eth.net_pnl, eth.time_in_market) == (1, 1, pytest.approx(137.4), pytest.approx(0.8))
    assert btc.profit_factor == pytest.approx(183.2 / 232.8)
    assert eth.profit_factor is None  # no losing trip

    assert worked.drawdown.max_pct == pytest.approx(2.941176, abs=1e-6)
    assert (worked.drawdown.peak_at, worked.drawdown.trough_at) == (D1 + 12 * HOUR, D1 + 24 * HOUR)
    assert worked.drawdown.longest_underwater == 36 * HOUR
    assert worked.daily_returns == 3
    assert worked.sharpe == pytest.approx(2.75750, abs=1e-4)
    assert worked.sortino == pytest.approx(4.75487, abs=1e-4)
    assert worked.buy_and_hold == pytest.approx(11_083.33, abs=0.01)
    assert (worked.final_equity, worked.period_start, worked.period_end) == (10_100, D1, D1 + 60 * HOUR)
    assert worked.events == (HALT,)


def test_a_flip_closes_one_trip_and_opens_the_other_side_and_dust_closes_a_trip() -> None:
    flip = [
        fill("BTC/USDT", "buy", 1.0, 100.0, 1.0, 0),
        # sells 3 at 110: closes the long (10 − 1 entry fee − 1 of this fee's 3) = 8, opens a short of 2 with fee 2
        fill("BTC/USDT", "sell", 3.0, 110.0, 3.0, 1, "signal"),
        # buys 1.9999 back at 100: the short's 0.0001 left is dust, so the trip closes: (110 − 100) × 1.9999 − 2·0.99995
        # (its entry fees pro rata) − 1 = 19.999 − 1.9999 − 1 = 16.9991
        fill("BTC/USDT", "buy", 1.9999, 100.0, 1.0, 2, "target"),
    ]
    trips = results(flip, [], {}, {}, [], 1_000.0, {"BTC/USDT": 0.001}).trips
    assert [(t.side, t.pnl, t.reason) for t in trips] == [
        ("long", pytest.approx(8.0), ExitReason.SIGNAL),
        ("short", pytest.approx(16.9991), ExitReason.TARGET),
    ]


def test_a_flatten_the_breaker_asked_for_is_a_breaker_exit_and_nothing_gives_none() -> None:
    exits = [fill("BTC/USDT", "buy", 1.0, 100.0, 0.0, 0), fill("BTC/USDT", "sell", 1.0, 90.0, 0.0, 1, "breaker")]
    [trip] = results(exits, [], {}, {}, [], 1_000.0, {}).trips
    assert trip.reason is ExitReason.BREAKER
    empty = results([], [], {}, {}, [], 1_000.0, {})
    assert (empty.total.closed, empty.total.win_rate, empty.sharpe, empty.buy_and_hold) == (0, None, None, None)
    assert empty.drawdown.max_pct == 0.0
