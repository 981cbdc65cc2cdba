"""The ``triplegain`` command tree (typer): every command, and how an error becomes one line.

Errors a user can fix (bad config, bad arguments) end in one line per problem and exit code 2; errors of the
system (an unreachable database) in one line and exit code 1; never a traceback.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from triplegain import __version__
from triplegain.cli_options import CliOptions, ConfigOption
from triplegain.config import default_config_path, load_settings, render_defaults
from triplegain.errors import ConfigError, TriplegainError

if TYPE_CHECKING:
    from triplegain.config import Settings

COMMANDS_BY_MODULE: dict[str, tuple[str, str]] = {
    "run": ("triplegain.daemon.cli", "run"),
    "agents": ("triplegain.daemon.cli", "agents"),
    "coordinator": ("triplegain.control", "coordinator_app"),
    "account": ("triplegain.accounts", "account_app"),
    "decisions": ("triplegain.review.cli", "decisions_app"),
    "llm-calls": ("triplegain.review.cli", "llm_calls_app"),
    "runs": ("triplegain.review.cli", "runs_app"),
    "results": ("triplegain.review.cli", "results"),
    "report": ("triplegain.review.cli", "report"),
    "sweep": ("triplegain.sweep.cli", "sweep"),
    "worker": ("triplegain.sweep.cli", "worker"),
    "alerts": ("triplegain.review.alerts_cli", "alerts_app"),
}
"""The commands defined in other modules: name → (module, the Typer app or function). Each module is imported
only when its command runs (or ``--help`` lists them), so ``triplegain coordinator status`` does not import the
daemon, the agents or the report's plotting (README, "Performance")."""


class _Commands(TyperGroup):
    """The top-level group: its own commands, and those of ``COMMANDS_BY_MODULE`` loaded when first asked for."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *(name for name in COMMANDS_BY_MODULE if name not in self.commands)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in COMMANDS_BY_MODULE and cmd_name not in self.commands:
            module, attribute = COMMANDS_BY_MODULE[cmd_name]
            self.add_command(_command(getattr(importlib.import_module(module), attribute), cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)


def _command(defined: Any, name: str) -> Any:
    """A Typer app, or a command function, as the click command it stands for (typer's own click, which recent
    typers vendor)."""
    if isinstance(defined, typer.Typer):
        group = typer.main.get_group(defined)
        group.name = name
        return group
    single = typer.Typer(add_completion=False)
    single.command(name)(defined)
    return typer.main.get_command(single)


app = typer.Typer(
    cls=_Commands,
    help="Multi-agent LLM trading coordinator (paper trading). See README.md.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Check settings and print the defaults.", no_args_is_help=True)
db_app = typer.Typer(help="The PostgreSQL database: migrations and status.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")


@app.callback()
def _options(ctx: typer.Context, config: ConfigOption = None) -> None:
    ctx.obj = CliOptions(config_path=config or default_config_path())


@app.command()
def version() -> None:
    """Print triplegain's version."""
    typer.echo(__version__)


@config_app.command("check")
def config_check(
    ctx: typer.Context,
    file: Annotated[
        Path | None,
        typer.Argument(help="File to check. Default: --config, $TRIPLEGAIN_CONFIG, else the built-in defaults."),
    ] = None,
) -> None:
    """Validate a settings file (with TRIPLEGAIN_* overrides applied): one line per problem, exit 2 if any."""
    path = file or ctx.obj.config_path
    load_settings(path)
    typer.echo(f"{path if path is not None else 'built-in defaults'}: valid")


@config_app.command("defaults")
def config_defaults() -> None:
    """Print every setting at its default, with comments (the content of config/default.yaml)."""
    typer.echo(render_defaults(), nl=False)


@db_app.command("migrate")
def db_migrate(ctx: typer.Context) -> None:
    """Apply pending migrations (starting the embedded server if no TRIPLEGAIN_DATABASE_URL is set)."""
    from triplegain.store import interrupt_on_sigterm

    settings = ctx.obj.settings()
    with interrupt_on_sigterm():
        asyncio.run(_migrate(settings))


@db_app.command("status")
def db_status(ctx: typer.Context) -> None:
    """Show the server in use and each migration's state; exit 1 if an applied migration changed or is missing."""
    from triplegain.store import interrupt_on_sigterm

    settings = ctx.obj.settings()
    with interrupt_on_sigterm():
        consistent = asyncio.run(_status(settings))
    if not consistent:
        raise typer.Exit(1)


async def _migrate(settings: Settings) -> None:
    from triplegain.store import migrate, open_database

    async with open_database(settings.database) as db:
        applied = await migrate(db)
    if not applied:
        typer.echo(f"{db.server}: schema up to date")
    for migration in applied:
        typer.echo(f"{db.server}: applied {migration.file_name}")


async def _status(settings: Settings) -> bool:
    """Print the server and one line per migration; False when the schema and the files disagree."""
    from triplegain.store import MigrationState, migration_status, open_database

    async with open_database(settings.database) as db:
        statuses = await migration_status(db)
    typer.echo(f"server: {db.server}")
    pending = sum(status.state is MigrationState.PENDING for status in statuses)
    typer.echo(f"migrations: {len(statuses) - pending} applied, {pending} pending")
    for status in statuses:
        when = f"  {status.applied_at:%Y-%m-%d %H:%M:%S %Z}" if status.applied_at else ""
        typer.echo(f"  {status.version:03d} {status.name:<24} {status.state.value}{when}")
    return all(status.checksum_ok for status in statuses)


def _report(error: TriplegainError) -> None:
    if isinstance(error, ConfigError):
        count = len(error.problems)
        typer.echo(f"{error.source}: {count} problem{'s' if count != 1 else ''}", err=True)
        for problem in error.problems:
            typer.echo(problem, err=True)
    else:
        typer.echo(f"error: {error}", err=True)


def _click_error(name: str) -> type[Exception]:
    """A click exception class, found from the one typer exports: recent typers vendor click, older ones import it."""
    return next(cls for cls in typer.BadParameter.__mro__ if cls.__name__ == name)


_USAGE_ERROR = _click_error("UsageError")
_CLICK_EXCEPTION = _click_error("ClickException")


def _usage_line(error: Exception) -> str:
    """A usage error (bad option, missing argument, unknown command) as one line naming the command's help."""
    message = " ".join(getattr(error, "format_message", error.__str__)().split()).replace("Value error, ", "")
    ctx = getattr(error, "ctx", None)
    return f"error: {message} — see '{ctx.command_path} --help'" if ctx is not None else f"error: {message}"


def run(args: Sequence[str] | None = None) -> None:
    """Run the command ``args`` names (default ``sys.argv``) and turn every error a user can cause into one line
    and an exit code (2 for a usage error) instead of a traceback or click's usage box."""
    try:
        code = app(args=args, prog_name="triplegain", standalone_mode=False)
    except TriplegainError as error:
        _report(error)
        sys.exit(error.exit_code)
    except _USAGE_ERROR as error:
        if type(error).__name__ != "NoArgsIsHelpError":  # the help was printed instead
            typer.echo(_usage_line(error), err=True)
        sys.exit(2)
    except _CLICK_EXCEPTION as error:
        typer.echo(_usage_line(error), err=True)
        sys.exit(getattr(error, "exit_code", 1))
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    if isinstance(code, int) and code:
        sys.exit(code)
