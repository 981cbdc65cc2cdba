"""The ``triplegain run`` command: arguments checked at the boundary, then the daemon (``daemon.run``)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from triplegain.config import Settings
from triplegain.daemon.run import RunOptions, Source, StoppedBeforeTrading, run_daemon
from triplegain.daemon.status import StatusBoard
from triplegain.http.exposure import check_exposure, http_token
from triplegain.http.settings import HttpSettings
from triplegain.llm import OnMissing
from triplegain.logs import configure_logging
from triplegain.model import account_name
from triplegain.system.assembly import AgentsPlacement

if TYPE_CHECKING:
    from triplegain.daemon.agents import AgentsSummary  # imports nats-py: only for the agents command
    from triplegain.daemon.summary import RunSummary

LogLevel = Literal["debug", "info", "warning", "error"]
STOPPED_AT_ONCE = 130
"""Exit code after a second SIGINT/SIGTERM (as a shell reports an interrupted command)."""


FilesArgument = Annotated[list[Path] | None, typer.Argument(help="More candle files for --replay.", show_default=False)]
SourceOption = Annotated[
    Source | None,
    typer.Option("--source", help="ccxt (live public candles), replay or synthetic. Default: market.source."),
]
ReplayOption = Annotated[
    list[Path] | None,
    typer.Option("--replay", help="Replay these CSV candle files (implies --source replay).", dir_okay=False),
]
SpeedOption = Annotated[
    str | None, typer.Option("--speed", help="Replay speed: a factor on candle time, or 'max'. Default: max.")
]
SeedOption = Annotated[int | None, typer.Option("--seed", help="Seed of --source synthetic.")]
JsonLogsOption = Annotated[bool, typer.Option("--json-logs", help="structlog JSON lines on stdout.")]
LogLevelOption = Annotated[
    LogLevel | None, typer.Option("--log-level", help="Default: logging.level live; warning in a replay.")
]
"""The candle source and log options ``run`` and ``agents`` share."""


AnswersFromOption = Annotated[
    int | None,
    typer.Option(
        "--answers-from",
        metavar="RUN",
        min=1,
        help="Serve every LLM answer from run RUN's stored calls: no request to any provider (a replay).",
    ),
]
OnMissingOption = Annotated[
    OnMissing | None,
    typer.Option(
        "--on-missing",
        help="With --answers-from, a question RUN never asked: conservative (no network; the default) or ask "
        "(the provider, which may cost money).",
    ),
]
"""``--answers-from`` and ``--on-missing``, as ``run`` and ``sweep`` take them."""


def parse_speed(value: str | None) -> float | None:
    """``max`` (as fast as possible) or a factor > 0 on candle time (60: an hour of candles per minute)."""
    if value is None or value.strip().lower() == "max":
        return None
    try:
        speed = float(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is neither a number nor 'max'", param_hint="--speed") from None
    if not speed > 0 or speed == float("inf"):
        raise typer.BadParameter(f"{value!r}: the speed must be a number > 0, or 'max'", param_hint="--speed")
    return speed


def parse_usd(value: float | None) -> float | None:
    """A run budget in USD: a finite number ≥ 0."""
    if value is not None and not (0 <= value < float("inf")):
        raise typer.BadParameter(f"{value!r}: a number of USD ≥ 0", param_hint="--max-llm-usd")
    return value


def parse_http(current: HttpSettings, value: str) -> HttpSettings:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) as the HTTP settings, turned on."""
    host, colon, port = value.strip().rpartition(":")
    host = host.strip("[]")
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        raise typer.BadParameter(f"{value!r}: HOST:PORT, e.g. 127.0.0.1:8080", param_hint="--http")
    return current.model_copy(update={"enabled": True, "host": host, "port": int(port)})


def run(
    ctx: typer.Context,
    files: FilesArgument = None,
    source: SourceOption = None,
    replay: ReplayOption = None,
    speed: SpeedOption = None,
    seed: SeedOption = None,
    account: Annotated[
        str | None,
        typer.Option(
            "--account",
            metavar="NAME",
            help="The paper account to trade (its state, orders and runs). Default: coordinator.account.",
        ),
    ] = None,
    answers_from: AnswersFromOption = None,
    on_missing: OnMissingOption = None,
    max_llm_usd: Annotated[
        float | None,
        typer.Option(
            "--max-llm-usd",
            metavar="USD",
            help="Run budget: once the run's paid LLM calls cost this, they stop and the conservative rule answers.",
        ),
    ] = None,
    agents: Annotated[
        AgentsPlacement,
        typer.Option(
            "--agents",
            help="local: every agent in this process; remote: candles and the technical, regime and sentiment views "
            "from NATS (a triplegain agents service; bus.nats.*, TRIPLEGAIN_NATS_URL).",
        ),
    ] = "local",
    standby: Annotated[
        bool,
        typer.Option(
            "--standby",
            help="When another daemon holds the account, wait and take over the moment it stops or dies.",
        ),
    ] = False,
    http: Annotated[
        str | None,
        typer.Option(
            "--http",
            metavar="HOST:PORT",
            help="Serve the REST API, dashboard, /healthz and /metrics here (http.*); beyond loopback only with "
            "TRIPLEGAIN_HTTP_TOKEN set.",
        ),
    ] = None,
    json_logs: JsonLogsOption = False,
    log_level: LogLevelOption = None,
) -> None:
    """Run the paper-trading daemon until the replay ends or Ctrl-C / SIGTERM (a second one stops at once)."""
    settings = ctx.obj.settings()
    if account is not None:
        coordinator = settings.coordinator.model_copy(update={"account": account_name(account, "--account")})
        settings = settings.model_copy(update={"coordinator": coordinator})
    if http is not None:
        settings = settings.model_copy(update={"http": parse_http(settings.http, http)})
    if settings.http.enabled:
        check_exposure(settings.http.host, http_token(os.environ))
    chosen, paths = _source(settings, source, replay, files, check_files=agents == "local")
    replaying = chosen != "ccxt"
    if answers_from is not None and not replaying:
        raise typer.BadParameter("re-runs a run over its candles: use it with --replay", param_hint="--answers-from")
    if on_missing is not None and answers_from is None:
        raise typer.BadParameter("applies to --answers-from RUN only", param_hint="--on-missing")
    _logging(settings, log_level, json_logs, replaying)
    options = RunOptions(
        source=chosen,
        replay_files=tuple(paths),
        speed=parse_speed(speed),
        seed=seed,
        answers_from=answers_from,
        on_missing=on_missing or "conservative",
        max_llm_usd=parse_usd(max_llm_usd),
        agents=agents,
        standby=standby,
    )
    board = _board(json_logs)
    try:
        summary = asyncio.run(run_daemon(settings, options, os.environ, board))
    except asyncio.CancelledError:
        typer.echo("stopped at once (second signal); acknowledged writes were already committed", err=True)
        raise typer.Exit(STOPPED_AT_ONCE) from None
    except StoppedBeforeTrading as stopped:
        typer.echo(str(stopped), err=True)
        raise typer.Exit(0) from None
    _print_summary(summary, json_logs)


def agents(
    ctx: typer.Context,
    files: FilesArgument = None,
    source: SourceOption = None,
    replay: ReplayOption = None,
    speed: SpeedOption = None,
    seed: SeedOption = None,
    max_llm_usd: Annotated[
        float | None,
        typer.Option(
            "--max-llm-usd",
            metavar="USD",
            help="Run budget: once the agents' paid LLM calls cost this, they stop and the baselines stand.",
        ),
    ] = None,
    json_logs: JsonLogsOption = False,
    log_level: LogLevelOption = None,
) -> None:
    """Run the technical, regime and sentiment agents for every account, publishing candles and views to NATS."""
    from triplegain.daemon.agents import run_agents  # imports nats-py: only for this command

    settings = ctx.obj.settings()
    chosen, paths = _source(settings, source, replay, files, check_files=True)
    _logging(settings, log_level, json_logs, chosen != "ccxt")
    options = RunOptions(
        source=chosen,
        replay_files=tuple(paths),
        speed=parse_speed(speed),
        seed=seed,
        max_llm_usd=parse_usd(max_llm_usd),
    )
    try:
        summary = asyncio.run(run_agents(settings, options, os.environ, _board(json_logs)))
    except asyncio.CancelledError:
        typer.echo("stopped at once (second signal)", err=True)
        raise typer.Exit(STOPPED_AT_ONCE) from None
    _print_summary(summary, json_logs)


def _source(
    settings: Settings, source: Source | None, replay: list[Path] | None, files: list[Path] | None, *, check_files: bool
) -> tuple[Source, list[Path]]:
    """The source chosen (``--replay`` files imply ``replay``) and the candle files, checked to exist."""
    paths = [*(replay or []), *(files or [])]
    if files and not replay:
        raise typer.BadParameter("candle files are given with --replay FILE…", param_hint="FILES")
    chosen: Source = "replay" if paths else (source or settings.market.source)
    if paths and source not in (None, "replay"):
        raise typer.BadParameter(f"--replay with --source {source}: pick one", param_hint="--source")
    for path in paths if check_files else ():
        if not path.is_file():
            raise typer.BadParameter(f"{path}: no such file", param_hint="--replay")
    return chosen, paths


def _logging(settings: Settings, log_level: LogLevel | None, json_logs: bool, replaying: bool) -> None:
    level = log_level or ("warning" if replaying else settings.logging.level)
    logging_config = settings.logging.model_copy(
        update={"level": level, "format": "json" if json_logs else settings.logging.format}
    )
    configure_logging(logging_config, stream=sys.stdout if json_logs else sys.stderr)


def _board(json_logs: bool) -> StatusBoard:
    interactive = sys.stdout.isatty() and not json_logs
    return StatusBoard(sys.stdout if interactive else sys.stderr, rich_panel=interactive)


def _print_summary(summary: RunSummary | AgentsSummary, json_logs: bool) -> None:
    if json_logs:
        typer.echo(summary.model_dump_json())
    else:
        for line in summary.lines():
            typer.echo(line)
