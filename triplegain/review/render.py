"""Decisions and LLM calls for the terminal (rich), readable at 80 columns.

Stored text (reasons, prompts, responses, JSON) is always printed as ``Text``, never as rich markup: a prompt
holding ``[bold]`` must appear as written. Lists truncate long cells with an ellipsis; ``show`` wraps long text
and clips prompts and responses to a few lines unless ``full`` is asked for.

Every value read from a jsonb column is treated as untrusted shape: a key that is missing or of another type
prints as ``?`` rather than failing, so a hand-written or older row can still be reviewed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from triplegain.review.records import (
    DecisionRecord,
    DecisionSummary,
    LLMCall,
    LLMCallSummary,
    OrderWithFills,
    ReportScope,
)
from triplegain.store.decisions import ConflictRow, DecisionRow
from triplegain.store.records import AgentOutputRecord

CLIP_LINES = 8
"""Lines of a prompt or response ``show`` prints without ``--full``."""
CLIP_CHARS = 600
"""Characters of a prompt or response ``show`` prints without ``--full``."""
JSON_CLIP_CHARS = 240
"""Characters of a view's body or a conflict's details printed without ``--full``."""

_ACTION_STYLES = {"buy": "green", "sell": "red", "hold": "dim"}
_INDENT = 2


def when(moment: datetime) -> str:
    """A time as UTC ``YYYY-MM-DD HH:MM`` (the lists) — seconds are noise at candle resolution."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def when_exact(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def short_id(value: object) -> str:
    """The first 8 hex digits of an id: what the lists print and ``show`` accepts."""
    return str(value)[:8]


def number(value: Any, digits: int = 4) -> str:
    """A float with ``digits`` decimals (significant digits when tiny or huge); ``?`` for a non-number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "?"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e9):
        return f"{value:.{digits}g}"
    return f"{value:.{digits}f}"


def scope_text(scope: ReportScope) -> str:
    """What a listing covers, for its title: ``run 7 (account paper)``, ``account paper (every run)``, ``every
    account and run``."""
    run = scope.run
    if run is not None:
        return f"run {run.id} (account {run.account})"
    if scope.account is not None:
        return f"account {scope.account} (every run)"
    return "every account and run"


@dataclass(frozen=True)
class Precision:
    """How many decimals a market's prices (and fees, in its quote asset) and quantities have: those of its
    ``price_step`` and ``qty_step`` (``execution.markets``, else ``execution.default_market``)."""

    price_decimals: int
    qty_decimals: int

    @classmethod
    def of_steps(cls, price_step: float, qty_step: float) -> Precision:
        return cls(_decimals(price_step), _decimals(qty_step))

    def price(self, value: Any) -> str:
        return _rounded(value, self.price_decimals)

    def qty(self, value: Any) -> str:
        return _rounded(value, self.qty_decimals)


def _decimals(step: float) -> int:
    """Decimals of a step: 0.1 → 1, 0.0005 → 4, 1e-8 → 8, 5 → 0."""
    text = format(Decimal(repr(step)).normalize(), "f")
    return len(text.partition(".")[2])


def _rounded(value: Any, decimals: int) -> str:
    """A number rounded to ``decimals`` without trailing zeros (41089.39123899, 0.05, 3); ``?`` for a non-number."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return "?"
    text = f"{round(Decimal(str(value)), decimals):,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _list_table(what: str, shown: int, total: int, scope: str) -> Table:
    """An empty list table titled with what it covers and how many of how many rows it shows."""
    counted = f"{shown} of {total}" if total > shown else f"{total}"
    return Table(
        title=Text(f"{what} of {scope}: {counted} (newest first)", style="bold"),
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )


def decision_table(rows: Sequence[DecisionSummary], total: int, scope: str) -> Table:
    """The decision list: newest first, the reason cut to the terminal's width."""
    table = _list_table("decisions", len(rows), total, scope)
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("id", no_wrap=True)
    table.add_column("symbol", no_wrap=True, max_width=12, overflow="ellipsis")
    table.add_column("act", no_wrap=True)
    table.add_column("conf", no_wrap=True, justify="right")
    table.add_column("cf", no_wrap=True, justify="right", header_style="bold")
    # The one column that gives way to a narrow terminal: wrappable for rich's layout, cut (never wrapped) per cell.
    table.add_column("reason", min_width=12)
    for row in rows:
        table.add_row(
            when(row.ts),
            short_id(row.id),
            Text(row.symbol),
            Text(row.action, style=_ACTION_STYLES.get(row.action, "")),
            f"{row.confidence:.2f}",
            str(len(row.conflict_rules)) if row.conflict_rules else "",
            _cut(row.reason),
        )
    if total > len(rows):
        table.caption = Text("cf: conflicts · --limit N for more · decisions show ID for one", style="dim")
    else:
        table.caption = Text("cf: conflicts · decisions show ID for one", style="dim")
    table.caption_justify = "left"
    return table


def call_table(rows: Sequence[LLMCallSummary], total: int, scope: str) -> Table:
    """The LLM call list: newest first."""
    table = _list_table("LLM calls", len(rows), total, scope)
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("id", no_wrap=True)
    table.add_column("provider", no_wrap=True, max_width=10, overflow="ellipsis")
    table.add_column("purpose", min_width=8)
    table.add_column("ms", no_wrap=True, justify="right")
    table.add_column("tokens", no_wrap=True, justify="right")
    table.add_column("$", no_wrap=True, justify="right")
    table.add_column("result", no_wrap=True, max_width=16, overflow="ellipsis")
    for row in rows:
        table.add_row(
            when(row.started_at),
            short_id(row.id),
            Text(row.provider),
            _cut(row.purpose),
            f"{row.latency_ms:.0f}",
            f"{row.input_tokens}/{row.output_tokens}",
            f"{row.cost_usd:.4f}",
            _call_result(row),
        )
    table.caption = Text("tokens: in/out · llm-calls show ID for one", style="dim")
    table.caption_justify = "left"
    return table


def _cut(text: str) -> Text:
    """A cell that is cut with an ellipsis, on one line, when the column is narrower."""
    return Text(text, no_wrap=True, overflow="ellipsis")


def _call_result(call: LLMCallSummary) -> Text:
    if call.error_class is not None:
        return Text(call.error_class, style="red")
    return Text("cached" if call.cached else "ok", style="dim" if call.cached else "green")


# --- decisions show ----------------------------------------------------------------------------------------


def print_decision(console: Console, record: DecisionRecord, *, full: bool, precision: Precision) -> None:
    """Every section of a decision, in the order it was decided; prices, fees and quantities to ``precision``."""
    decision = record.decision
    console.print(Text(f"decision {decision.id}", style="bold"))
    header = Text("  ")
    header.append(decision.symbol, style="bold")
    header.append("  ")
    header.append(decision.action.upper(), style=_ACTION_STYLES.get(decision.action, ""))
    header.append(f"  confidence {decision.confidence:.4f}  at {when_exact(decision.ts)}")
    console.print(header)
    console.print(
        Text(
            f"  account {decision.account} · run {decision.run_id if decision.run_id is not None else '—'} · "
            f"state {decision.coordinator_state.value} · level {decision.degradation_level.name}"
        )
    )
    console.print(_indented(Text(f"reason: {decision.reason}")))

    _section(console, "intent")
    console.print(_indented(_intent(decision.intent, precision)))

    _section(console, f"agent views ({len(record.views)})")
    inputs = _inputs_by_output(decision.consensus_inputs)
    if not record.views:
        console.print(_indented(Text("no stored view is named by this decision", style="dim")))
    for view in record.views:
        console.print(_indented(_view(view, inputs.get(str(view.id)), full=full)))

    _section(console, "consensus")
    console.print(_indented(_consensus(decision.consensus_terms, decision.consensus_inputs, decision.consensus_result)))

    _section(console, f"conflicts ({len(record.conflicts)})")
    if not record.conflicts:
        console.print(_indented(Text("none", style="dim")))
    for conflict in record.conflicts:
        console.print(_indented(_conflict(conflict, full=full)))
    if decision.resolution is not None:
        console.print(_indented(_resolution(decision.resolution)))

    _section(console, f"LLM attempts ({len(record.llm_calls)})")
    if not record.llm_calls:
        console.print(_indented(Text("none: no conflict went to an LLM", style="dim")))
    for number_, call in enumerate(record.llm_calls, 1):
        if number_ > 1:
            console.print()
        console.print(_indented(call_block(call, full=full, title=f"#{number_} ")))

    _section(console, "risk rules")
    console.print(_indented(_risk(decision, precision)))

    _section(console, f"orders ({len(record.orders)})")
    if not record.orders:
        console.print(_indented(Text("none: a hold makes no order", style="dim")))
    for order in record.orders:
        console.print(_indented(_order(order, precision)))


def _section(console: Console, title: str) -> None:
    console.print()
    console.print(Text(f"── {title} ", style="bold cyan"))


def _indented(renderable: RenderableType, level: int = 1) -> Padding:
    return Padding(renderable, (0, 0, 0, _INDENT * level), expand=False)


def _intent(intent: Mapping[str, Any], precision: Precision) -> Text:
    if not intent:
        return Text("not recorded", style="dim")
    return Text(
        f"{intent.get('direction', '?')} at {precision.price(intent.get('entry_price'))} · "
        f"stop {precision.price(intent.get('stop_price'))} ({intent.get('stop_basis', '?')}) · "
        f"target {precision.price(intent.get('target_price'))} · "
        f"base confidence {number(intent.get('base_confidence'))}"
    )


def _inputs_by_output(inputs: Any) -> dict[str, Mapping[str, Any]]:
    entries = inputs if isinstance(inputs, list) else list(inputs.values()) if isinstance(inputs, dict) else []
    return {str(entry.get("output_id")): entry for entry in entries if isinstance(entry, dict)}


def _view(view: AgentOutputRecord, entry: Mapping[str, Any] | None, *, full: bool) -> Group:
    line = Text()
    line.append(f"{view.agent:<10}", style="bold")
    line.append(f" {when(view.ts)}  ")
    confidence = number(view.confidence, 3) if view.confidence is not None else "—"
    if entry is not None:
        line.append(
            f"{entry.get('direction', '?')} · conf {confidence} · weight {number(entry.get('weight'), 2)} · "
            f"{entry.get('stance', '?')}"
        )
    else:
        line.append(f"conf {confidence} · the intent's source, not a consensus input")
    parts: list[RenderableType] = [line, _indented(Text(clip(_json(view.body), JSON_CLIP_CHARS, full), style="dim"))]
    if view.reasoning:
        parts.append(_indented(Text(f"reasoning: {clip(view.reasoning, CLIP_CHARS, full)}")))
    ids = f"view {short_id(view.id)}"
    if view.llm_call_id is not None:
        ids += f" · LLM call {short_id(view.llm_call_id)} (llm-calls show)"
    parts.append(_indented(Text(ids, style="dim")))
    return Group(*parts)


def _consensus(terms: Mapping[str, Any], inputs: Any, result: Mapping[str, Any]) -> Group:
    settings = terms.get("settings") if isinstance(terms.get("settings"), dict) else {}
    assert isinstance(settings, dict)
    weights = settings.get("weights") if isinstance(settings.get("weights"), dict) else {}
    assert isinstance(weights, dict)
    total = sum(value for value in weights.values() if isinstance(value, int | float))
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("agent", "lean", "stance"):
        table.add_column(name, no_wrap=True)
    for name in ("weight", "conf", "w·c"):
        table.add_column(name, no_wrap=True, justify="right")
    for entry in _inputs_by_output(inputs).values():
        weight, confidence = entry.get("weight"), entry.get("confidence")
        product = None
        if isinstance(weight, int | float) and isinstance(confidence, int | float):
            product = weight * confidence
        table.add_row(
            str(entry.get("agent", "?")),
            str(entry.get("direction", "?")),
            str(entry.get("stance", "?")),
            number(weight, 2),
            number(confidence),
            number(product),
        )
    get = terms.get
    lines = [
        f"direction {result.get('direction', '?')}, base confidence {number(get('base_confidence'))} "
        "(the technical view's)",
        f"support    {number(get('support'))}  opposition {number(get('opposition'))}  "
        f"neutrality {number(get('neutrality'))}  (Σ w·c of each stance / Σ w = {number(total, 2)})",
        f"boost   = agreement_boost {number(settings.get('agreement_boost'), 2)} × support {number(get('support'))}"
        f" = {number(get('boost'))}",
        f"penalty = disagreement_penalty {number(settings.get('disagreement_penalty'), 2)} × (opposition "
        f"{number(get('opposition'))} + neutral_weight {number(settings.get('neutral_weight'), 2)} × neutrality "
        f"{number(get('neutrality'))}) = {number(get('penalty'))}",
        f"confidence = clamp₀¹(base {number(get('base_confidence'))} + boost {number(get('boost'))} − penalty "
        f"{number(get('penalty'))}) = clamp₀¹({number(get('unbounded'))}) = {number(result.get('confidence'))}",
    ]
    absent = get("absent")
    if isinstance(absent, list) and absent:
        lines.append(f"absent (no fresh view): {', '.join(str(agent) for agent in absent)}")
    return Group(table, *(Text(line) for line in lines))


def _conflict(conflict: ConflictRow, *, full: bool) -> Group:
    details = dict(conflict.details)
    severity, summary = details.pop("severity", None), details.pop("summary", None)
    line = Text()
    line.append(conflict.rule, style="bold yellow")
    line.append(f"  severity {number(severity, 2)}")
    if conflict.resolution is not None:
        line.append(f" → {conflict.resolution} by {conflict.resolved_by}")
    else:
        line.append(" → not settled", style="dim")
    parts: list[RenderableType] = [line]
    if isinstance(summary, str):
        parts.append(_indented(Text(summary)))
    if details:
        parts.append(_indented(Text(clip(_json(details), JSON_CLIP_CHARS, full), style="dim")))
    return Group(*parts)


def _resolution(resolution: Mapping[str, Any]) -> Group:
    answer = resolution.get("resolution") if isinstance(resolution.get("resolution"), dict) else {}
    assert isinstance(answer, dict)
    line = Text("resolution: ", style="bold")
    line.append(
        f"{answer.get('action', '?')} (confidence {number(answer.get('confidence'), 2)}) by "
        f"{resolution.get('resolved_by', '?')}; size −{number(answer.get('size_reduction_pct'), 1)} %"
    )
    if answer.get("stop_distance_pct") is not None:
        line.append(f", stop {number(answer.get('stop_distance_pct'), 2)} %")
    if answer.get("leverage") is not None:
        line.append(f", leverage {number(answer.get('leverage'), 2)}")
    parts: list[RenderableType] = [line]
    if answer.get("reasoning"):
        parts.append(_indented(Text(str(answer["reasoning"]))))
    clamps = resolution.get("clamps")
    if isinstance(clamps, list):
        for clamp in clamps:
            if isinstance(clamp, dict):
                parts.append(
                    _indented(
                        Text(
                            f"clamped {clamp.get('field', '?')}: asked {number(clamp.get('asked'))}, "
                            f"applied {number(clamp.get('applied'))}"
                        )
                    )
                )
    return Group(*parts)


def call_block(call: LLMCall, *, full: bool, title: str = "") -> Group:
    """One LLM attempt: who, what for, how long, how much, the outcome, and both prompts and the response."""
    head = Text(title)
    head.append(f"{call.provider}/{call.model}", style="bold")
    head.append(f" · {call.purpose} · step {call.step}, attempt {call.attempt} · {call.latency_ms:.0f} ms · ")
    head.append(f"{call.input_tokens} in / {call.output_tokens} out tokens · ${call.cost_usd:.6f}")
    if call.served_from_run is not None:
        head.append(f" · served from run {call.served_from_run}", style="dim")
    if call.cached:
        head.append(" · cached", style="dim")
    head.append(" · ")
    head.append(f"error {call.error_class}" if call.error_class else "ok", style="red" if call.error_class else "green")
    parts: list[RenderableType] = [
        head,
        _indented(
            Text(
                f"id {call.id} · request {call.request_id} · {when_exact(call.started_at)}"
                + (f" (wall {when_exact(call.wall_started_at)})" if call.wall_started_at != call.started_at else "")
                + (f" · {call.symbol}" if call.symbol else "")
                + (f" · decision {call.decision_id}" if call.decision_id else ""),
                style="dim",
            )
        ),
    ]
    if call.error_message is not None:
        parts.append(_indented(Text(f"error: {call.error_class}: {call.error_message}", style="red")))
    parts.append(_labelled("system prompt", call.system_prompt, full=full))
    parts.append(_labelled("user prompt", call.user_prompt, full=full))
    parts.append(_labelled("response", call.raw_response, full=full))
    if call.parsed is not None:
        parts.append(_labelled(f"parsed ({call.answer_model})", _json(call.parsed), full=full))
    if call.validation_error is not None:
        parts.append(_labelled("validation error", call.validation_error, full=full, style="red"))
    return Group(*parts)


def _labelled(label: str, text: str | None, *, full: bool, style: str = "") -> Group:
    if text is None:
        return Group(_indented(Text(f"{label}: none", style="dim")))
    heading = Text(f"{label} ({len(text)} chars):", style="bold")
    return Group(_indented(heading), _indented(Text(clip(text, CLIP_CHARS, full), style=style), 2))


def _risk(decision: DecisionRow, precision: Precision) -> Group:
    risk, effects = decision.risk_checks, decision.effects
    decided = risk.get("decision")
    parts: list[RenderableType] = []
    if not isinstance(decided, dict):
        parts.append(Text("the risk rules were not reached (no trade was proposed to them)", style="dim"))
    elif decided.get("approved") and decision.action == "hold":
        # The rules sized a trade, and something after them (the resolver, the level) made it a hold.
        line = Text("approved by the risk rules, but not ordered: ", style="yellow")
        line.append(_why_held(decision))
        parts.append(line)
        parts.append(_outcomes(decided.get("outcomes")))
    else:
        approved = decided.get("approved")
        line = Text("approved" if approved else "rejected", style="green" if approved else "red")
        line.append(
            f" · quantity {precision.qty(risk.get('quantity'))} · notional {precision.price(risk.get('notional'))} · "
            f"leverage {number(risk.get('leverage'), 2)} · "
            f"level size multiplier {number(risk.get('size_multiplier'), 2)}"
        )
        parts.append(line)
        parts.append(_outcomes(decided.get("outcomes")))
        before = risk.get("before_resolution")
        if isinstance(before, dict):
            changed = _changed_outcomes(before.get("outcomes"), decided.get("outcomes"))
            if changed:
                parts.append(Text("before the resolver changed the proposal:", style="bold"))
                parts.append(_outcomes(changed))
    if effects:
        listed = ", ".join(f"{key} {value}" for key, value in effects.items())
        parts.append(Text(f"level effects: {listed}", style="dim"))
    return Group(*parts)


def _why_held(decision: DecisionRow) -> str:
    """Why a decision the risk rules approved is a hold: the resolver's answer, else the decision's reason."""
    resolution = decision.resolution or {}
    answer = resolution.get("resolution") if isinstance(resolution.get("resolution"), dict) else None
    if isinstance(answer, dict) and answer.get("action") in ("abort", "wait"):
        return f"the resolver ({resolution.get('resolved_by', '?')}) answered {answer['action']}"
    return decision.reason


def _outcomes(outcomes: Any) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("rule", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("detail", ratio=1)
    for outcome in outcomes if isinstance(outcomes, list) else []:
        if isinstance(outcome, dict):
            verdict = str(outcome.get("verdict", "?"))
            style = {"passed": "green", "cut": "yellow"}.get(verdict, "red")
            detail = Text(str(outcome.get("detail", "")))
            table.add_row(str(outcome.get("rule", "?")), Text(verdict, style=style), detail)
    return table


def _changed_outcomes(before: Any, after: Any) -> list[Any]:
    """The outcomes before the resolution that differ from the final ones."""
    final = {json.dumps(outcome, sort_keys=True) for outcome in after} if isinstance(after, list) else set()
    if not isinstance(before, list):
        return []
    return [outcome for outcome in before if json.dumps(outcome, sort_keys=True) not in final]


def _order(entry: OrderWithFills, precision: Precision) -> Group:
    order = entry.order
    line = Text()
    line.append(f"{order.side} {order.type}", style=_ACTION_STYLES.get(order.side, ""))
    price = f" at {precision.price(order.price)}" if order.price is not None else ""
    line.append(
        f" {precision.qty(order.qty)} {order.symbol}{price} · {order.status} · created {when_exact(order.created_at)}"
    )
    parts: list[RenderableType] = [line]
    if order.stop_price is not None or order.target_price is not None:
        stop = precision.price(order.stop_price) if order.stop_price is not None else "none"
        target = precision.price(order.target_price) if order.target_price is not None else "none"
        parts.append(_indented(Text(f"stop {stop} · target {target}")))
    if entry.status_reason:
        parts.append(_indented(Text(f"{order.status}: {entry.status_reason}")))
    parts.append(_indented(Text(f"client id {order.client_order_id} · id {order.id}", style="dim")))
    if not entry.fills:
        parts.append(_indented(Text("no fills", style="dim")))
    for fill in entry.fills:
        liquidity = f" · {fill.liquidity}" if fill.liquidity else ""
        parts.append(
            _indented(
                Text(
                    f"fill {precision.qty(fill.qty)} at {precision.price(fill.price)} · "
                    f"fee {precision.price(fill.fee)} {fill.fee_currency}{liquidity} · "
                    f"{when_exact(fill.ts)}"
                )
            )
        )
    return Group(*parts)


def clip(text: str, limit: int, full: bool) -> str:
    """``text``, or its first ``CLIP_LINES`` lines and ``limit`` characters with a note of what was left out."""
    if full:
        return text
    lines = text.splitlines()
    kept = "\n".join(lines[:CLIP_LINES])
    kept = kept[:limit]
    if len(kept) >= len(text):
        return text
    return f"{kept}… [{len(text) - len(kept)} more characters: --full shows all]"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
