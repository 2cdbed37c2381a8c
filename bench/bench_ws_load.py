"""Many people at once (issue 29, "Load, for the record"): light websocket clients click the Data
page's New batch on one dashboard while a training runs; how long each click takes to answer, the
server's memory, and the training's speed beside the same training with nobody clicking.

    python bench/bench_ws_load.py --data-dir /tmp/cifar/batches [--sessions 1 5 10 20]
        [--clicks 20] [--pause 0.5] [--train-size 10000]

No browsers: each session is one websocket speaking Streamlit's own protocol (the messages a
browser tab sends: open the page, press the button), so the figures are the server's, not the
browsers' (on 2 cores a dozen Chromiums would measure themselves). A click is timed from sending
the button press to the server's message that the run (the fragment's) has finished. The server
(bench/dashboard_server.py) listens on 127.0.0.1 and is stopped by its PID at the end.

For each number of sessions: a training of one epoch (tutorial network, --train-size images) is
started by the CLI into the server's runs folder, and the sessions click (with --pause between
clicks) until it ends. Before them, the same training with no session open: the ratio of images/s
says what the clicking cost the training. Printed: per number of sessions, the median, 90th
percentile and worst click, errors, the server's resident memory before and after, and the
training's images/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from dashboard_server import start_server  # noqa: E402

PAGE = "data"
BUTTON = "New batch"
FINISHED = {ForwardMsg.ScriptFinishedStatus.Value(name) for name in
            ("FINISHED_SUCCESSFULLY", "FINISHED_FRAGMENT_RUN_SUCCESSFULLY")}
ANSWER_TIMEOUT_S = 120  # the first open decodes the data once (bench: a minute on a busy machine)


def rerun_message(widget_id: str | None = None, fragment_id: str = "") -> bytes:
    """A browser tab's request to run the page, or (with a button's id) to press that button."""
    msg = BackMsg()
    state = msg.rerun_script
    state.page_name = PAGE
    if widget_id:
        widget = state.widget_states.widgets.add()
        widget.id = widget_id
        widget.trigger_value = True
    if fragment_id:
        state.fragment_id = fragment_id
    return msg.SerializeToString()


async def until_finished(ws, find: str | None = None) -> tuple[str | None, str]:
    """Read the server's messages until the run finishes; the id and fragment of the button
    labelled `find` when asked. Raises on an exception shown on the page or a failed run."""
    found, fragment = None, ""
    while True:
        msg = ForwardMsg.FromString(await asyncio.wait_for(ws.recv(), ANSWER_TIMEOUT_S))
        kind = msg.WhichOneof("type")
        if kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            element = msg.delta.new_element
            if element.WhichOneof("type") == "exception":
                raise RuntimeError(f"the page showed an exception: {element.exception.message}")
            if find and element.WhichOneof("type") == "button" and element.button.label == find:
                found, fragment = element.button.id, msg.delta.fragment_id
        elif kind == "script_finished":
            if msg.script_finished not in FINISHED:
                raise RuntimeError(f"the run ended with status {msg.script_finished}")
            return found, fragment


async def session(ws_url: str, stop: asyncio.Event, pause: float,
                  times: list[float], errors: list[str]) -> None:
    """One tab: open the Data page, then press New batch until `stop`."""
    try:
        async with websockets.connect(ws_url, subprotocols=["streamlit"], max_size=None) as ws:
            await ws.send(rerun_message())
            button, fragment = await until_finished(ws, find=BUTTON)
            if button is None:
                raise RuntimeError(f"no {BUTTON!r} button on the {PAGE} page")
            while not stop.is_set():
                start = time.perf_counter()
                await ws.send(rerun_message(button, fragment))
                await until_finished(ws)
                times.append(time.perf_counter() - start)
                await asyncio.sleep(pause)
    except Exception as error:  # noqa: BLE001 - every failure is a figure of this benchmark
        errors.append(f"{type(error).__name__}: {error}")


def cpu_model() -> str:
    """The CPU's model name as lscpu shows it (speed ratios differ between machines)."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def rss_mb(pid: int) -> float:
    """Resident memory of the process, MB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_training(data_dir: Path, runs_dir: Path, train_size: int) -> subprocess.Popen:
    """One epoch of the tutorial network, as the CLI trains it, its summary as JSON."""
    return subprocess.Popen(
        [sys.executable, "-m", "cifar_core", "train", "--data-dir", str(data_dir),
         "--runs-dir", str(runs_dir), "--epochs", "1", "--train-size", str(train_size),
         "--seed", "0", "--json"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def images_per_s(training: subprocess.Popen) -> float:
    out, _ = training.communicate(timeout=1800)
    return json.loads(out.strip().splitlines()[-1])["images_per_s"]


async def load_round(ws_url: str, sessions: int, pause: float, training: subprocess.Popen
                     ) -> tuple[list[float], list[str]]:
    """`sessions` tabs clicking until the training ends."""
    stop, times, errors = asyncio.Event(), [], []
    tasks = [asyncio.create_task(session(ws_url, stop, pause, times, errors))
             for _ in range(sessions)]
    while training.poll() is None:
        await asyncio.sleep(0.2)
    stop.set()
    await asyncio.gather(*tasks)
    return times, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 5, 10, 20])
    parser.add_argument("--pause", type=float, default=0.5,
                        help="seconds between a session's clicks")
    parser.add_argument("--train-size", type=int, default=10_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as runs:
        runs_dir = Path(runs)
        server, url = start_server(args.data_dir, runs_dir)
        try:
            ws_url = url.replace("http://", "ws://") + "/_stcore/stream"
            # The first open decodes the data and imports the page: not counted.
            warm_times, warm_errors = [], []
            asyncio.run(_warm(ws_url, warm_times, warm_errors))
            if warm_errors:
                raise SystemExit(f"the Data page did not open: {warm_errors[0]}")
            alone = images_per_s(start_training(args.data_dir, runs_dir, args.train_size))
            print(f"machine: {cpu_model()}; training alone "
                  f"{alone:,.0f} images/s; server {rss_mb(server.pid):,.0f} MB")
            print(f"{'sessions':>8} {'clicks':>6} {'median s':>8} {'p90 s':>6} {'worst s':>7} "
                  f"{'errors':>6} {'server MB':>13} {'training':>14}")
            for n in args.sessions:
                before = rss_mb(server.pid)
                training = start_training(args.data_dir, runs_dir, args.train_size)
                times, errors = asyncio.run(load_round(ws_url, n, args.pause, training))
                speed = images_per_s(training)
                after = rss_mb(server.pid)
                ordered = sorted(times) or [float("nan")]
                print(f"{n:>8} {len(times):>6} {statistics.median(ordered):>8.2f} "
                      f"{ordered[int(0.9 * (len(ordered) - 1))]:>6.2f} {ordered[-1]:>7.2f} "
                      f"{len(errors):>6} {before:>6,.0f}->{after:<6,.0f} "
                      f"{speed:>6,.0f} ({speed / alone:.2f}x)")
                for error in sorted(set(errors)):
                    print(f"         error: {error}")
        finally:
            server.terminate()
            server.wait(timeout=30)


async def _warm(ws_url: str, times: list[float], errors: list[str]) -> None:
    stop = asyncio.Event()
    stop.set()  # open the page once, press nothing
    await session(ws_url, stop, 0, times, errors)


if __name__ == "__main__":
    main()
