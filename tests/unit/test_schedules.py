import pytest

from deeprl.core.schedules import linear_schedule


def test_linear_schedule_endpoints_and_middle():
    assert linear_schedule(1.0, 0.1, 100, 0) == 1.0
    assert linear_schedule(1.0, 0.1, 100, 50) == pytest.approx(0.55)
    assert linear_schedule(1.0, 0.1, 100, 100) == pytest.approx(0.1)


def test_linear_schedule_holds_end_value_after_duration():
    assert linear_schedule(1.0, 0.05, 100, 10_000) == pytest.approx(0.05)


def test_linear_schedule_zero_duration_is_end_value():
    assert linear_schedule(1.0, 0.05, 0, 0) == 0.05
