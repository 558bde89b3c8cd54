"""The report in headless Chromium: no console errors, no network, stop marker and legend in
the DOM, and a screenshot saved as a test artefact (``artifacts/report/``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.report._cdp import BASH, CHROMIUM, Browser
from tracestop.report import ReportResult, trace_slug

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not os.access(CHROMIUM, os.X_OK),
        reason=f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)",
    ),
    pytest.mark.skipif(not os.access(BASH, os.X_OK), reason=f"{BASH} is missing (starts chromium)"),
]

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "report"
#: generous: a page of the report must open in under 2 s; CI machines are slow
LOAD_LIMIT_S = 2.0


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    with Browser() as b:
        yield b


def _allowed(url: str, root: Path) -> bool:
    if url.startswith("data:"):
        return True  # embedded figures and the empty favicon: no request leaves the page
    return url.startswith("file://") and url.startswith(root.resolve().as_uri())


def test_trace_page_in_chromium(browser: Browser, tiny_report: ReportResult) -> None:
    root = tiny_report.index.parent
    page = root / "t" / f"{trace_slug('tiny:m-qwen:gsm8k:1')}.html"
    visit = browser.visit(page)
    assert visit.console_errors == []
    assert visit.requests and visit.requests[0] == page.resolve().as_uri()
    assert [u for u in visit.requests if not _allowed(u, root)] == []
    assert visit.load_seconds < LOAD_LIMIT_S

    assert browser.evaluate("document.querySelectorAll('.stop-marker').length") >= 2
    assert browser.evaluate("document.querySelector('.stop-marker[data-policy=\"oracle\"]')"
                            ".textContent.includes('stops here')")
    assert browser.evaluate("document.querySelectorAll('#legend .legend-type').length") == 14
    assert browser.evaluate("document.querySelectorAll('#legend .legend-role').length") == 3
    assert browser.evaluate("document.querySelectorAll('script').length") == 0
    # the step colours really apply: a verification step is not on a white background
    bg = browser.evaluate("getComputedStyle(document.querySelector('.step.t-verification'))"
                          ".backgroundColor")
    assert bg not in ("rgba(0, 0, 0, 0)", "rgb(255, 255, 255)")

    browser.evaluate("document.querySelector('.stop-marker').scrollIntoView({block: 'center'})")
    shot = browser.screenshot(ARTIFACTS / "trace-page.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"screenshot: {shot}")


def test_escaped_text_does_not_run(browser: Browser, tiny_report: ReportResult) -> None:
    page = tiny_report.index.parent / "t" / f"{trace_slug('tiny:m-qwen:gsm8k:2')}.html"
    visit = browser.visit(page)
    assert visit.console_errors == []
    assert browser.evaluate("document.querySelectorAll('script').length") == 0
    assert "<script>alert('xss')</script>" in browser.evaluate(
        "document.getElementById('question').textContent")


@pytest.mark.parametrize("name", ["index.html", "traces-1.html", "traces-2.html", "frontier.html",
                                  "shift.html"])
def test_summary_pages_in_chromium(browser: Browser, tiny_report: ReportResult, name: str) -> None:
    root = tiny_report.index.parent
    visit = browser.visit(root / name)
    assert visit.console_errors == []
    assert [u for u in visit.requests if not _allowed(u, root)] == []
    assert visit.load_seconds < LOAD_LIMIT_S
    if name in ("frontier.html", "shift.html"):
        # embedded figures decoded and laid out
        assert browser.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
    shot = browser.screenshot(ARTIFACTS / name.replace(".html", ".png"))
    print(f"screenshot: {shot}")
