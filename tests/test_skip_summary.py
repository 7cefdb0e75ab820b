"""The end-of-run warning for skipped browser tests (tests/skip_summary.py)."""

pytest_plugins = ["pytester"]


def test_a_run_without_chromium_ends_with_one_clear_warning(pytester):
    pytester.makepyfile(
        test_pages_browser="""
        import pytest

        def test_reading_room():
            pytest.skip("no Chromium at /usr/bin/chromium: apt-get install chromium")

        def test_dashboard():
            pytest.skip("no Chromium at /usr/bin/chromium: apt-get install chromium")

        def test_other():
            pytest.skip("no CUDA GPU visible")
        """
    )
    result = pytester.runpytest("-p", "tests.skip_summary", "-p", "no:django")
    result.assert_outcomes(skipped=3)
    result.stdout.fnmatch_lines(
        [
            "*2 browser tests were NOT run: no Chromium*",
            "skipped: test_pages_browser.py",
            "*apt-get update && apt-get install -y chromium*REQUIRE_BROWSER=1*",
        ]
    )


def test_a_full_run_prints_no_warning(pytester):
    pytester.makepyfile(test_ok="def test_ok():\n    assert True\n")
    result = pytester.runpytest("-p", "tests.skip_summary", "-p", "no:django")
    result.assert_outcomes(passed=1)
    assert "NOT run" not in result.stdout.str()
