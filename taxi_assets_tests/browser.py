"""Headless Chromium driven by Playwright, for tests that use the UI as a person does.

The browser is Debian's ``chromium`` (``scripts/install_system_packages.sh``): Playwright is
pointed at its executable and never downloads a browser of its own. The flags keep it off
the network (this machine reaches nothing but loopback) and out of first-run prompts.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

CHROMIUM_FLAGS = [
    "--no-sandbox",  # tests run as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> Path:
    found = shutil.which("chromium")
    if found is None:
        raise FileNotFoundError(
            "Debian's chromium is not installed: run `make system-packages` "
            "(scripts/install_system_packages.sh)"
        )
    return Path(found)


@contextmanager
def browser_page(screenshot_on_failure: Path | None = None) -> Iterator[Page]:
    """A fresh page in a new headless Chromium; on an error, a screenshot is kept at
    ``screenshot_on_failure`` so the failure can be looked at."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium_path()), headless=True, args=CHROMIUM_FLAGS
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            try:
                yield page
            except BaseException:
                if screenshot_on_failure is not None:
                    page.screenshot(path=str(screenshot_on_failure))
                raise
        finally:
            browser.close()
