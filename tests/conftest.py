"""Suite-wide settings: deterministic hypothesis runs in CI; openssl required in CI."""

from __future__ import annotations

import pytest
from ci_support import IN_CI, require_openssl
from hypothesis import HealthCheck, settings

# CI replays the same examples every run, so a red build is reproducible;
# local runs explore new ones (and keep failures in .hypothesis/).
settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
# derandomize spelled out: hypothesis itself derandomizes whenever a CI variable exists,
# even CI=false, which ci_support reads as "not CI".
settings.register_profile("dev", deadline=None, derandomize=False)
settings.load_profile("ci" if IN_CI else "dev")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked ``openssl`` skip without the binary, or fail in CI (ci_support)."""
    if item.get_closest_marker("openssl") is not None:
        require_openssl()
