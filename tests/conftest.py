"""Suite-wide settings: deterministic hypothesis runs in CI."""

from __future__ import annotations

import os

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
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
