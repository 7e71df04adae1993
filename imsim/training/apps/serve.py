"""Serving an app with Voila on 127.0.0.1: a one-cell notebook that shows it, a free
port, the URL printed, a clean stop on Ctrl-C or SIGTERM.

```python
server = start("trainer", root)        # Voila running; server.url
server.stop()
```

The process runner is injectable (``popen``) so the launcher is testable without Voila.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imsim.errors import UsageError

APPS = {"trainer": ("imsim.training.apps.trainer", "TrainerApp"),
        "planner": ("imsim.training.apps.planner", "PlannerApp")}
HOST = "127.0.0.1"
READY_SECONDS = 60.0


def notebook(app: str, root: Path, folder: Path) -> Path:
    """A one-cell notebook whose output is the app (what Voila renders)."""
    if app not in APPS:
        raise UsageError(f"no app {app!r}: choose one of {', '.join(APPS)}")
    module, cls = APPS[app]
    source = f"from {module} import {cls}\n\n{cls}({str(root)!r}).widget"
    document = {"cells": [{"cell_type": "code", "execution_count": None, "id": "app",
                           "metadata": {}, "outputs": [], "source": source}],
                "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                            "name": "python3"}},
                "nbformat": 4, "nbformat_minor": 5}
    path = folder / f"imsim-{app}.ipynb"
    path.write_text(json.dumps(document, indent=1), encoding="utf-8")
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def command(path: Path, port: int) -> list[str]:
    return [sys.executable, "-m", "voila", str(path), "--no-browser", f"--port={port}",
            f"--Voila.ip={HOST}", "--Voila.port_retries=0"]


@dataclass
class Server:
    process: Any
    url: str
    folder: tempfile.TemporaryDirectory[str]

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate Voila (then kill it if it does not go), remove the notebook."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        self.folder.cleanup()


def start(app: str, root: Path, port: int | None = None,
          popen: Callable[..., Any] = subprocess.Popen) -> Server:
    """Start Voila on the app; returns once the port answers (or Voila ended)."""
    folder = tempfile.TemporaryDirectory(prefix="imsim-app-")
    path = notebook(app, root, Path(folder.name))
    port = port or free_port()
    process = popen(command(path, port), cwd=str(root), stdin=subprocess.DEVNULL)
    server = Server(process, f"http://{HOST}:{port}/", folder)
    if not _ready(process, port):
        server.stop()
        raise UsageError(f"voila did not start on {HOST}:{port}: see its messages above")
    return server


def _ready(process: Any, port: int, seconds: float = READY_SECONDS) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            if sock.connect_ex((HOST, port)) == 0:
                return True
        time.sleep(0.2)
    return False


def serve(app: str, root: Path, port: int | None = None,
          popen: Callable[..., Any] = subprocess.Popen,
          echo: Callable[[str], None] = print) -> int:
    """Start, print the URL, wait until Ctrl-C or SIGTERM, stop cleanly; exit code."""
    server = start(app, root, port, popen)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    echo(f"imsim: the {app} at {server.url} (Ctrl-C stops it)")
    try:
        code = server.process.wait()
        echo(f"imsim: voila ended with exit code {code}")
        return 1 if code else 0
    except KeyboardInterrupt:
        echo(f"imsim: stopping the {app}")
        return 0
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
