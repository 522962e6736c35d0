"""Shared by the benchmarks: machine description, statistics, result files."""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import ssl

    import cryptography
    from cryptography.hazmat.backends.openssl import backend

    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cryptography": cryptography.__version__,
        "cryptography_openssl": backend.openssl_version_text(),
        "python_ssl_openssl": ssl.OPENSSL_VERSION,
    }


def percentile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of already sorted ``ordered``, nearest rank."""
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(samples: list[float]) -> dict[str, float]:
    """Median, p99 and p99.9 of ``samples`` (seconds), reported in microseconds."""
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "median_us": statistics.median(ordered) * 1e6,
        "p99_us": percentile(ordered, 0.99) * 1e6,
        "p999_us": percentile(ordered, 0.999) * 1e6,
        "mean_us": statistics.fmean(ordered) * 1e6,
    }


def write(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path
