"""`make bench-preferences` on a small study: it runs, the engine's concordance and interval
equal the plain loop's on the same resamples, and its repeat-read kappas scikit-learn's."""

import re

from metrics.bench.preferences import main


def test_benchmark_runs_and_agrees_with_the_plain_loop(capsys):
    args = ["--readers", "3", "--reconstructions", "60", "--metrics", "2", "--bootstrap", "50"]
    assert main([*args, "--plain-resamples", "20"]) == 0
    output = capsys.readouterr().out
    assert "whole preference analysis" in output and "plain pandas loop" in output
    difference = float(re.search(r"95% interval: (\S+)", output).group(1))
    assert difference < 1e-12
    kappa = float(re.search(r"largest difference (\S+); drift", output).group(1))
    assert kappa < 1e-12, "the repeat-read kappas equal scikit-learn's"
