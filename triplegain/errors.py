"""Errors that reach a user as one clear line (exit code 2 for their mistakes, 1 for the system's)."""

from __future__ import annotations


class TriplegainError(Exception):
    """Base of every error the CLI turns into one line without a traceback."""

    exit_code = 1


class UserError(TriplegainError):
    """The user's input is wrong (config, arguments, files): exit code 2."""

    exit_code = 2


class ConfigError(UserError):
    """A config file or ``TRIPLEGAIN_*`` override is invalid; ``problems`` holds one line per problem."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


class ResourceClosed(TriplegainError):
    """A resource (the bus, the batching writer, a feed) was closed and refuses what was asked of it; each resource
    raises its own subclass, so a caller may catch one or all of them."""


class DatabaseError(TriplegainError):
    """The database could not be reached or refused an operation; the message names the server."""
