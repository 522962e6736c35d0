"""What the test suite needs from its environment, and what happens when it is missing.

The interop tests drive the real ``openssl`` binary. Locally a missing binary
skips them, with a reason that says how to lift it; in CI (``CI`` set, as
``.ci/run`` does) it fails them, so a build never goes green with a hundred
interop tests silently gone.
"""

from __future__ import annotations

import os
import shutil

import pytest

__all__ = ["IN_CI", "OPENSSL", "OPENSSL_MISSING", "require_openssl"]

#: True when the ``CI`` variable is set to anything but an explicit no.
IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")

OPENSSL = shutil.which("openssl")
OPENSSL_MISSING = (
    "the openssl binary is not on PATH: install the openssl binary "
    "(e.g. 'apt-get install openssl') to run this interop test"
)


def require_openssl() -> str:
    """The openssl binary's path; skips the test without it, or fails it in CI."""
    if OPENSSL is None:
        if IN_CI:
            pytest.fail(f"{OPENSSL_MISSING} (CI is set: a missing openssl fails)", pytrace=False)
        pytest.skip(OPENSSL_MISSING)
    return OPENSSL
