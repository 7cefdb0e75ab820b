"""`make bench-analysis` on a small study: it runs, and both engines give the same intervals."""

import re

from metrics.bench.analysis import main


def test_benchmark_runs_and_the_engines_agree(capsys):
    assert (
        main(["--readers", "3", "--reconstructions", "40", "--metrics", "2", "--questions", "1"])
        == 0
    )
    output = capsys.readouterr().out
    assert "vectorised engine" in output and "plain per-resample scipy" in output
    difference = float(re.search(r"95% intervals: (\S+)", output).group(1))
    assert difference < 1e-9
