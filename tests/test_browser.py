"""The HTML report in a real browser: headless Chromium (the operating system's package,
``apt-get install chromium``) driven by Playwright — never a downloaded browser.

Checks: no JavaScript error or console error; one table row per finding; filtering by
verdict (and kind, study, text) changes the rows shown; every figure draws (a non-blank
screenshot of its region), the run dashboards included; the log switches change the axis.

Where Chromium or Playwright is missing the test skips with a message — except in CI
(``CI`` set, as ``.ci/run`` does), where it fails: the browser test must run there.
Set ``SGDLAB_SCREENSHOTS=DIR`` to keep the page's screenshots.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

import _report_fixtures as fx

CHROMIUM = os.environ.get("SGDLAB_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def _missing() -> str | None:
    if not Path(CHROMIUM).is_file():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install 'sgdlab[browser]')"
    return None


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    why = _missing()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the browser test must run in CI: {why}")
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    tmp = tmp_path_factory.mktemp("browser")
    fx.register()
    try:
        outcome, _, monitor_id = fx.build(tmp)
    finally:
        fx.unregister()
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp / "profile"), executable_path=CHROMIUM, args=ARGS, headless=True,
            viewport={"width": 1400, "height": 1000}, offline=True,
        )  # fmt: skip
        try:
            tab = ctx.new_page()
            problems: list[str] = []
            tab.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            tab.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                   if m.type == "error" else None)  # fmt: skip
            tab.goto(outcome.html.resolve().as_uri())
            tab.wait_for_function("document.querySelectorAll('.plot[data-drawn]').length > 0 && "
                                  "[...document.querySelectorAll('.plot[data-drawn]')]"
                                  ".every(p => p.dataset.rendered || p.dataset.error)")  # fmt: skip
            yield tab, outcome, monitor_id, problems
        finally:
            ctx.close()


def _non_blank(png: bytes) -> int:
    """Distinct colours in a screenshot (a blank region has one or two)."""
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    return len(img.getcolors(maxcolors=img.width * img.height))


def _shown(tab) -> int:
    return tab.locator("tr.finding:visible").count()


def _check_plots(tab, root: str, keep: str) -> int:
    plots = tab.locator(f"{root} .plot")
    n = plots.count()
    for i in range(n):
        el = plots.nth(i)
        assert el.get_attribute("data-error") is None, el.get_attribute("data-error")
        assert el.get_attribute("data-rendered") == "1"
        el.scroll_into_view_if_needed()
        colours = _non_blank(el.screenshot())
        assert colours > 20, f"figure {el.get_attribute('data-fig')} looks blank"
    if os.environ.get("SGDLAB_SCREENSHOTS"):
        out = Path(os.environ["SGDLAB_SCREENSHOTS"])
        out.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(out / f"{keep}.png"), full_page=True)
    return n


def test_no_errors_and_one_row_per_finding(page):
    tab, outcome, _, problems = page
    assert problems == []
    assert tab.locator("tr.finding").count() == len(outcome.findings)
    assert _shown(tab) == len(outcome.findings)
    assert tab.locator("#f-count").inner_text() == f"{len(outcome.findings)} of 4 findings"


def test_filters_change_the_rows(page):
    tab, outcome, _, problems = page
    agree = sum(f.verdict == "agrees" for f in outcome.findings)
    tab.select_option("#f-verdict", "agrees")
    assert _shown(tab) == agree < len(outcome.findings)
    tab.select_option("#f-verdict", "disagrees")
    assert _shown(tab) == 1
    tab.select_option("#f-verdict", "")
    tab.select_option("#f-kind", "analytic")
    assert _shown(tab) == 1
    tab.select_option("#f-kind", "")
    tab.fill("#f-text", "wrong value")
    assert _shown(tab) == 1
    tab.fill("#f-text", "no such text anywhere")
    assert _shown(tab) == 0 and tab.locator("tr.section-head:visible").count() == 0
    tab.fill("#f-text", "")
    assert _shown(tab) == len(outcome.findings)
    assert problems == []


def test_every_study_figure_draws(page):
    tab, _, _, problems = page
    assert tab.locator("#studies img").count() == 1  # the paper figure, inlined
    assert _check_plots(tab, "#studies", "studies") == 2
    assert problems == []


def test_every_run_dashboard_draws_and_log_switches_work(page):
    tab, _, monitor_id, problems = page
    ids = tab.eval_on_selector_all("#run-pick option", "os => os.map(o => o.value)")
    assert monitor_id in ids and len(ids) == 3
    for rid in ids:
        tab.select_option("#run-pick", rid)
        tab.wait_for_function("[...document.querySelectorAll('#run-view .plot')]"
                              ".every(p => p.dataset.rendered || p.dataset.error)")  # fmt: skip
        assert _check_plots(tab, "#run-view", f"run-{rid}") >= 1
    # the Monitor dashboard shows its advice section
    tab.select_option("#run-pick", monitor_id)
    tab.wait_for_function("[...document.querySelectorAll('#run-view .plot')]"
                          ".every(p => p.dataset.rendered)")  # fmt: skip
    assert "Advice" in tab.locator("#run-view").inner_text()
    first = tab.locator("#run-view .plot").first
    box = tab.locator("#run-view .card").first.locator("input.logy")
    before = first.evaluate("el => el.layout.yaxis.type")
    box.click()
    after = first.evaluate("el => el.layout.yaxis.type")
    assert {before, after} == {"log", "linear"}
    assert problems == []

