"""The browser fixture proven on a page of its own: headless Chromium at a phone's and a desktop's size
clicks a button on a page a ThreadingHTTPServer serves, and the screenshot is a PNG of the window."""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import DESKTOP, PHONE, Browser

pytestmark = pytest.mark.browser

PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fixture check</title></head>
<body>
<p id="status">waiting</p>
<button id="go" type="button" onclick="document.getElementById('status').textContent = 'clicked'">Go</button>
</body></html>
"""


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path != "/":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def page_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (and that it is a PNG at all)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert data[-8:-4] == b"IEND", "a truncated PNG"
    return width, height


@pytest.mark.parametrize(("which", "size"), [("phone", PHONE), ("desktop", DESKTOP)])
def test_a_click_changes_the_text_and_the_screenshot_is_a_png_of_the_window(
    request: pytest.FixtureRequest, page_url: str, tmp_path: Path, which: str, size: tuple[int, int]
) -> None:
    browser: Browser = request.getfixturevalue(which)
    driver = browser.driver
    driver.get(page_url)
    status = driver.find_element(By.ID, "status")
    assert status.text == "waiting"
    driver.find_element(By.ID, "go").click()
    WebDriverWait(driver, 5).until(lambda d: d.find_element(By.ID, "status").text != "waiting")
    assert status.text == "clicked"
    assert driver.execute_script("return [window.innerWidth, window.innerHeight]") == list(size)
    assert driver.capabilities["browserName"] == "chrome"
    path = browser.screenshot(f"fixture-{which}", directory=tmp_path)
    assert path == tmp_path / f"fixture-{which}.png"
    assert png_size(path) == size


def test_a_screenshot_name_cannot_leave_its_directory(phone: Browser, tmp_path: Path) -> None:
    for name in ("../escape", "a/b", "", "UPPER", ".hidden"):
        with pytest.raises(ValueError, match="screenshot name"):
            phone.screenshot(name, directory=tmp_path)
    assert not list(tmp_path.glob("**/*.png")) and not (tmp_path.parent / "escape.png").exists()
