"""`manage.py run_demo`: worker and web server come up, and Ctrl-C or SIGTERM stops every
process."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def processes_in_group(pgid: int) -> str:
    """`ps` lines (pid, state, elapsed, command) of a process group, to tell what hangs."""
    listing = subprocess.run(
        ["ps", "-eo", "pgid=,pid=,stat=,etime=,args="], capture_output=True, text=True
    )
    return "\n".join(
        line for line in listing.stdout.splitlines() if line.split(maxsplit=1)[0] == str(pgid)
    )


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize("stopped_by", ["ctrl-c", "sigterm"])
def test_run_demo_serves_and_a_stop_stops_worker_and_server(tmp_path, stopped_by):
    """Ctrl-C in a terminal signals the whole process group; `kill` or a process manager
    sends SIGTERM to run_demo alone, which must stop its worker and web server itself."""
    # Always the embedded defaults, as `make demo` uses them, in a scratch folder.
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_MEDIA_ROOT")
    }
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        READERSTUDY_TEST_DIR=str(tmp_path),
        READERSTUDY_DATA_DIR=str(tmp_path),
    )
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    port = free_port()
    log = (tmp_path / "demo.log").open("w+")
    # A terminal's Ctrl-C signals the whole foreground process group: reproduce that.
    demo = subprocess.Popen(
        [python, "manage.py", "run_demo", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        # As in a terminal. A test run started in the background (nohup, `&` in a script,
        # some CI runners) ignores SIGINT, and children inherit that: nothing would stop.
        preexec_fn=default_sigint,
    )
    try:
        deadline = time.monotonic() + 90
        while "Demo running at" not in (tmp_path / "demo.log").read_text():
            assert demo.poll() is None, (tmp_path / "demo.log").read_text()
            assert time.monotonic() < deadline, "the demo did not come up in 90 s"
            time.sleep(0.5)
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/accounts/login/", timeout=10
        ) as page:
            assert page.status == 200 and b"Log in" in page.read()
        output = (tmp_path / "demo.log").read_text()
        assert "reader1 / demo-reader" in output and "researcher / demo-researcher" in output

        if stopped_by == "ctrl-c":
            os.killpg(demo.pid, signal.SIGINT)
        else:
            os.kill(demo.pid, signal.SIGTERM)
        try:
            code = demo.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"run_demo still running 60 s after {stopped_by}; processes of its group:\n"
                + processes_in_group(demo.pid)
                + "\nits output:\n"
                + (tmp_path / "demo.log").read_text()[-4000:]
            )
        output = (tmp_path / "demo.log").read_text()
        assert code == 0, output
        assert "stopping the web server and the worker" in output, "run_demo itself stopped"
        deadline = time.monotonic() + 30
        while group_alive(demo.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not group_alive(demo.pid), f"a worker or server process outlived {stopped_by}"
    finally:
        if group_alive(demo.pid):
            os.killpg(demo.pid, signal.SIGKILL)
        log.close()
