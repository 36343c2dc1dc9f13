"""A real browser for the tests of HTML pages and pictures: Debian's headless Chromium driven by
selenium through Debian's chromedriver. `look(path)` opens a file as a person would and says
what the page asked the network for, what its console said, which images did not decode, and
how much the screenshot varies (0 for a blank page)."""

from __future__ import annotations

import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
MISSING = "no browser: `apt-get install -y chromium chromium-driver` (Debian) runs the browser tests"


@dataclass
class Seen:
    requests: list[str]  # every URL the page asked for, the file itself included
    console: list[str]  # console messages of level warning or severe
    broken_images: list[str]  # <img> elements whose picture did not decode
    images: int  # <img> elements
    svgs: int  # inline <svg> elements
    spread: float  # the standard deviation of the screenshot's grey levels
    screenshot: bytes
    title: str
    text: str


class Browser:
    def __init__(self):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1280,1600",
            "--allow-file-access-from-files",
        ):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        self.driver = webdriver.Chrome(service=Service(DRIVER), options=options)

    def look(self, path: Path) -> Seen:
        from PIL import Image, ImageStat

        d = self.driver
        d.get_log("performance"), d.get_log("browser")  # what earlier pages left
        d.set_window_size(1280, 1600)
        d.get(Path(path).resolve().as_uri())
        d.execute_script("return document.readyState")
        broken = d.execute_script(
            "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt)"
        )
        images = d.execute_script("return document.images.length")
        svgs = d.execute_script("return document.querySelectorAll('svg').length")
        height = d.execute_script("return document.documentElement.scrollHeight")
        d.set_window_size(1280, min(max(height, 600), 6000))
        shot = d.get_screenshot_as_png()
        requests = [
            m["params"]["request"]["url"]
            for entry in d.get_log("performance")
            if (m := json.loads(entry["message"])["message"])["method"] == "Network.requestWillBeSent"
        ]
        console = [e["message"] for e in d.get_log("browser") if e["level"] in ("WARNING", "SEVERE")]
        spread = ImageStat.Stat(Image.open(io.BytesIO(shot)).convert("L")).stddev[0]
        return Seen(
            requests,
            console,
            broken,
            images,
            svgs,
            spread,
            shot,
            d.title,
            d.execute_script("return (document.body || document.documentElement).textContent"),
        )

    def close(self):
        self.driver.quit()


@pytest.fixture(scope="session")
def browser():
    if not (CHROMIUM and DRIVER):
        if os.environ.get("CNNLAB_BROWSER_TESTS") == "required":  # CI installs the browser: its absence fails
            pytest.fail(MISSING)
        pytest.skip(MISSING)
    b = Browser()
    yield b
    b.close()


def assert_seen_whole(seen: Seen, path: Path) -> None:
    """What every page must be: nothing fetched but the file itself (data: URIs are not fetched
    from anywhere), a quiet console, every image decoded, and not blank."""
    outside = [u for u in seen.requests if not (u.startswith("data:") or u == Path(path).resolve().as_uri())]
    assert not outside, f"the page asked for {outside}"
    assert not seen.console, seen.console
    assert not seen.broken_images, f"images that did not decode: {seen.broken_images}"
    assert seen.spread > 8, f"the screenshot is blank (grey levels' spread {seen.spread:.1f})"
