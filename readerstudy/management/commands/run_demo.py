"""`manage.py run_demo`: a Celery worker and the web server, until Ctrl-C (or SIGTERM, SIGHUP:
a `kill`, a closed terminal, a process manager) stops both."""

import signal
import socket
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from readerstudy.config.celery import worker_command
from readerstudy.management.commands.build_demo import READERS, RESEARCHER


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            probe.settimeout(0.5)
            if probe.connect_ex((host, port)) == 0:
                return True
        time.sleep(0.2)
    return False


def _stop_as_for_ctrl_c(signum, frame) -> None:
    """SIGTERM or SIGHUP: stop as for Ctrl-C. Python's default for them ends the process at
    once, and the worker and web server it started ran on without it."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


class Command(BaseCommand):
    help = "Run a Celery worker and the web server for the demo; Ctrl-C or SIGTERM stops both."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args, host: str, port: int, **options):
        with socket.socket() as probe:
            if probe.connect_ex((host, port)) == 0:
                self.stderr.write(f"port {port} on {host} is in use: is another demo running?")
                sys.exit(2)
        python = sys.executable
        worker = subprocess.Popen(worker_command(python))
        web = subprocess.Popen(
            [python, "manage.py", "runserver", f"{host}:{port}", "--noreload"],
            cwd=settings.BASE_DIR,
        )
        children = [worker, web]
        for stop in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(stop, _stop_as_for_ctrl_c)
        try:
            if not wait_for_port(host, port, timeout=60):
                self.stderr.write("the web server did not start; see the messages above")
                return
            readers = ", ".join(f"{name} / {password}" for name, password in READERS)
            self.stdout.write(
                self.style.SUCCESS(
                    f"\n  Demo running at http://{host}:{port}/\n"
                    f"  Researcher: {RESEARCHER[0]} / {RESEARCHER[1]}\n"
                    f"  Readers:    {readers}\n"
                    f"  A Celery worker (pid {worker.pid}) computes the metrics and the dashboard's analyses. Ctrl-C stops both.\n"
                )
            )
            while all(child.poll() is None for child in children):
                time.sleep(0.5)
            self.stderr.write("a demo process stopped; shutting the other down")
        except KeyboardInterrupt as why:
            for stop in (signal.SIGTERM, signal.SIGHUP):  # a second one must not cut this short
                signal.signal(stop, signal.SIG_IGN)
            cause = str(why) or "Ctrl-C"
            self.stdout.write(f"\nstopping the web server and the worker ({cause})...")
        finally:
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            for name, child in zip(("the worker", "the web server"), children, strict=True):
                try:
                    child.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    self.stderr.write(f"{name} (pid {child.pid}) did not stop in 20 s: killed")
                    child.kill()
            self.stdout.write("stopped.")
