"""Fail the install if the resolved versions drift from the pinned family.

An unpinned install quietly resolves a years-old dagster-gcp; this catches that and any
other surprise right after `pip install`.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version

from packaging.version import Version

EXACT = {
    "dagster": "1.13.27",
    "dagster-webserver": "1.13.27",
    "dagster-graphql": "1.13.27",
    "dagster-gcp": "0.29.27",
    "dagster-postgres": "0.29.27",
    "pandera": "0.35.0",
    "catboost": "1.2.10",
    "polars": "2.1.0",
}
BELOW = {"pandas": "3"}


def main() -> int:
    problems = []
    for name, wanted in EXACT.items():
        try:
            found = version(name)
        except PackageNotFoundError:
            problems.append(f"{name} is not installed (want {wanted})")
            continue
        if found != wanted:
            problems.append(f"{name} {found} installed, want {wanted}")
    for name, ceiling in BELOW.items():
        found = version(name)
        if Version(found) >= Version(ceiling):
            problems.append(f"{name} {found} installed, want < {ceiling}")
    if problems:
        print("Resolved versions drift from the pinned family:", *problems, sep="\n  ")
        return 1
    print("Resolved versions:", ", ".join(f"{n} {version(n)}" for n in [*EXACT, *BELOW]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
