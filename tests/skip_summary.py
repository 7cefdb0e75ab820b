"""A pytest plugin: end a run that skipped the browser tests with one warning a person sees.

`-ra` lists each skip on a line of its own, which nobody reads; a newcomer without Chromium
must not mistake a partial run for a full one.
"""

from __future__ import annotations

import pytest

BROWSER_SKIP_REASON = "no Chromium at"
INSTALL_BROWSER = "apt-get update && apt-get install -y chromium"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter):
    # Outermost wrapper: after pytest's own summary (the -ra lines), before the final counts.
    yield
    skipped = terminalreporter.stats.get("skipped", [])
    browser = sorted(
        {report.nodeid for report in skipped if BROWSER_SKIP_REASON in str(report.longrepr)}
    )
    if not browser:
        return
    terminalreporter.write_sep(
        "!", f"{len(browser)} browser tests were NOT run: no Chromium", red=True, bold=True
    )
    files = sorted({nodeid.split("::")[0] for nodeid in browser})
    terminalreporter.write_line(f"skipped: {', '.join(files)}", red=True)
    terminalreporter.write_line(
        f"install it with `{INSTALL_BROWSER}` (or set CHROMIUM_PATH), then run `make test` "
        "again; REQUIRE_BROWSER=1 turns these skips into failures",
        red=True,
        bold=True,
    )
