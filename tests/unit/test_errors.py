"""Every error the package defines derives from ``TriplegainError``, so the CLI turns each into one line, and the
closed-resource errors are one family."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import triplegain
from triplegain.bus import BusClosed
from triplegain.errors import ResourceClosed, TriplegainError
from triplegain.market.feeds.ccxt_feed import FeedClosed
from triplegain.store.writer import WriterClosed

pytestmark = pytest.mark.timeout(60)


def _defined_errors() -> list[type[BaseException]]:
    errors: list[type[BaseException]] = []
    for module_info in pkgutil.walk_packages(triplegain.__path__, prefix="triplegain."):
        module = importlib.import_module(module_info.name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__ == module.__name__:
                errors.append(value)
    return errors


def test_every_error_the_package_defines_is_a_triplegain_error() -> None:
    errors = _defined_errors()
    assert len(errors) > 20
    outside = [f"{error.__module__}.{error.__qualname__}" for error in errors if not issubclass(error, TriplegainError)]
    assert outside == []


def test_closed_resources_are_one_family() -> None:
    assert all(issubclass(error, ResourceClosed) for error in (BusClosed, WriterClosed, FeedClosed))
