"""The dashboard served for a browser benchmark: `streamlit run app.py` on a free loopback port,
with its own data and runs folders (and no password)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: Path, runs_dir: Path,
                 root: Path = ROOT) -> tuple[subprocess.Popen, str]:
    """(the server's process, its address) once it accepts connections (at most 60 s); the
    caller stops it with proc.terminate(). `root`: the checkout whose app.py is served (another
    one, e.g. a `git worktree` of an earlier commit, to compare before and after)."""
    port = free_port()
    env = {**os.environ, "CIFAR_DATA_DIR": str(data_dir), "CIFAR_RUNS_DIR": str(runs_dir)}
    env.pop("CIFAR_DASHBOARD_PASSWORD", None)
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py",
                             "--server.port", str(port), "--server.address", "127.0.0.1",
                             "--server.headless", "true", "--browser.gatherUsageStats", "false"],
                            cwd=root, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    return proc, f"http://127.0.0.1:{port}"
