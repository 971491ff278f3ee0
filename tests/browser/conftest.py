"""Headless Chromium for browser tests: Debian's ``chromium`` driven through Debian's ``chromedriver``.

``make test`` installs both (``make browser``: apt-get, as root) when either is missing; Selenium is told
where the driver is (``Service(executable_path=...)``), so Selenium Manager never runs and nothing is
downloaded. Each browser starts with a fresh profile (``--user-data-dir`` in the test's tmp dir), no
background networking, updates, sync or QUIC, and a viewport the size of a phone or of a desktop.
``Browser.screenshot`` saves the window as ``docs/screenshots/<name>.png`` (or under another directory).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.selenium_manager import SeleniumManager

# the running sandbox (``aftersync local``) the sidebar's browser tests drive, as tests/e2e start it
from tests.e2e.conftest import _own_state_dir, sandbox  # noqa: F401 - fixtures used here

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = ROOT / "docs" / "screenshots"
PHONE = (390, 844)  # CSS pixels, a phone in portrait (WeCom's webview fills it)
DESKTOP = (1280, 800)
FLAGS = (
    "--headless=new",
    "--no-sandbox",  # root in CI and containers: Chromium's sandbox needs user namespaces it may not get
    "--disable-gpu",
    "--disable-dev-shm-usage",  # /dev/shm is small in containers
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--force-device-scale-factor=1",  # a screenshot's pixels are the window's CSS pixels
)
SCREENSHOT_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")


@dataclass
class Browser:
    driver: WebDriver
    size: tuple[int, int]

    def screenshot(self, name: str, directory: Path = SCREENSHOTS) -> Path:
        """Save the window as ``<directory>/<name>.png`` (``name``: lower-case letters, digits, ``.-_``)."""
        if not SCREENSHOT_NAME.fullmatch(name):
            raise ValueError(f"screenshot name {name!r}: lower-case letters, digits, '.', '-', '_' only")
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{name}.png"
        if not self.driver.save_screenshot(str(path)):
            raise RuntimeError(f"Chromium did not write {path}")
        return path


def chromium_options(size: tuple[int, int], profile: Path) -> Options:
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={size[0]},{size[1]}")
    return options


def _never_selenium_manager(*_: object, **__: object) -> dict[str, str]:
    raise AssertionError("Selenium Manager must not run: the driver is /usr/bin/chromedriver")


@pytest.fixture
def open_browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[tuple[int, int]], Browser]]:
    """A factory: a fresh headless Chromium of a window size, quit when the test ends."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        pytest.fail(
            f"browser tests need {' and '.join(missing)}: run `make browser` as root "
            "(apt-get install -y chromium chromium-driver); `make test` does it"
        )
    monkeypatch.setattr(SeleniumManager, "binary_paths", _never_selenium_manager)
    started: list[WebDriver] = []

    def start(size: tuple[int, int]) -> Browser:
        profile = tmp_path / f"chromium-profile-{len(started)}"
        profile.mkdir()
        driver = webdriver.Chrome(
            options=chromium_options(size, profile), service=Service(executable_path=str(CHROMEDRIVER))
        )
        started.append(driver)
        # the viewport exactly the size asked for (the window's own frame would take some of it), a phone's
        # as a mobile device (its meta viewport honoured, as in WeCom's webview)
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": size[0] < 600},
        )
        return Browser(driver, size)

    yield start
    for driver in started:
        driver.quit()


@pytest.fixture
def phone(open_browser: Callable[[tuple[int, int]], Browser]) -> Browser:
    return open_browser(PHONE)


@pytest.fixture
def desktop(open_browser: Callable[[tuple[int, int]], Browser]) -> Browser:
    return open_browser(DESKTOP)
