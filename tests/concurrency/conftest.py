import pytest

from triplegain.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
