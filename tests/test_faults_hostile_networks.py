"""Issue 29 (what a hostile user found), the items about networks and their memory:

- 2: a few-KB .pth whose last layer claims 2,000,000 classes through a stride-0 view (or a
  class list that claims as many) made the import allocate gigabytes: shapes, the bytes behind
  each tensor and class counts are checked before anything is built.
- 11: imported NaN/inf weights were accepted ("10.0 %") and then Try it failed: refused in words.
- 12: lr-find ran in the server process with no memory guard, and a training that ran out of
  memory gave the allocator's text as its reason: the finder's memory is estimated first and a
  finding that would not fit is refused; an out-of-memory error is said in words.
- 18: `evaluate` on a network of another class count said only "holds weights of a different
  network (Error(s) in loading state_dict for Net:)": now it says it was trained on N classes
  and the data has M.
- 20: a frozen run kept showing its last speed and "about 10 min 39 s left": once no loss report
  has come for much longer than usual, it says so instead.
"""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from cifar_core.errors import CheckpointError
from cifar_core.explain.network_imports import import_network, read_network
from cifar_core.runs.store import RunStore
from cifar_core.runs.views import run_progress
from cifar_core.training.checkpoint import FORMAT, MAX_CLASSES, load_checkpoint
from cifar_core.training.config import TrainConfig
from cifar_core.training.events import StatsEvent
from cifar_core.training.models import Net

ROOT = Path(__file__).resolve().parents[1]


def saved_bytes(obj) -> bytes:
    out = io.BytesIO()
    torch.save(obj, out)
    return out.getvalue()


def stride_zero_state(classes: int = 2_000_000) -> dict:
    """The tutorial's weights with a last layer that claims `classes` outputs, all of them one
    row repeated through a stride-0 view: the file stays a few KB."""
    state = Net().state_dict()
    state["fc3.weight"] = torch.zeros(1, 84).expand(classes, 84)
    state["fc3.bias"] = torch.zeros(1).expand(classes)
    return state


def peak_memory_of_reading(tmp_path: Path, content: bytes) -> tuple[int, str]:
    """(MB the process's peak memory grew while read_network read `content`, what it said), in
    a fresh process, so that the peak is this reading's alone."""
    path = tmp_path / "hostile.pth"
    path.write_bytes(content)
    code = textwrap.dedent(f"""
        import resource, torch
        from cifar_core.explain.network_imports import read_network
        from cifar_core.errors import CheckpointError
        from cifar_core.training.models import MODELS
        for name in MODELS:  # what building any network brings in, before the baseline
            MODELS[name].build(10, None)
        content = open({str(path)!r}, "rb").read()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            read_network(content, "hostile.pth")
            said = "accepted"
        except CheckpointError as exc:
            said = str(exc)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print((after - before) // 1024)
        print(said)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    grown, said = out.stdout.split("\n", 1)
    return int(grown), said.strip()


# --- item 2 --------------------------------------------------------------------------------------

def test_a_stride_zero_last_layer_is_refused_without_allocating_from_its_claim(tmp_path):
    content = saved_bytes(stride_zero_state())
    assert len(content) < 300_000
    grown, said = peak_memory_of_reading(tmp_path, content)
    assert said != "accepted"
    assert "2,000,000" in said or "more numbers than the file holds" in said, said
    assert grown < 100, f"reading a {len(content):,}-byte file took {grown} MB more memory"


def test_a_claimed_class_list_beyond_the_limit_is_refused_before_building(monkeypatch):
    import cifar_core.training.checkpoint
    built = []
    real = cifar_core.training.checkpoint.model_spec
    monkeypatch.setattr(cifar_core.training.checkpoint, "model_spec",
                        lambda name: built.append(name) or real(name))
    content = saved_bytes({"format": FORMAT, "model": "tutorial",
                           "state_dict": Net().state_dict(),
                           "classes": ["x"] * (MAX_CLASSES + 1), "config": {}, "metrics": {}})
    with pytest.raises(CheckpointError) as err:
        read_network(content, "many.pth")
    assert f"{MAX_CLASSES + 1:,} classes" in str(err.value)
    assert f"at most {MAX_CLASSES:,}" in str(err.value)
    assert built == []


def test_a_width_beyond_the_networks_range_is_refused_before_building(tmp_path):
    from cifar_core.training.models import MODELS
    spec = MODELS["fast"]
    fast = spec.build(10, None)
    content = saved_bytes({"format": FORMAT, "model": "fast", "width": 10**6,
                           "state_dict": fast.state_dict(), "classes": None, "config": {},
                           "metrics": {}})
    grown, said = peak_memory_of_reading(tmp_path, content)
    assert said != "accepted" and "width" in said and f"{spec.widths[1]:,}" in said, said
    assert grown < 100


def test_tensors_that_share_one_storage_many_times_over_are_refused(tmp_path):
    state = Net().state_dict()
    big = torch.zeros(2_000_000)  # 8 MB, saved once
    for i in range(50):  # claimed 50 times: 400 MB of numbers from an 8 MB file
        state[f"extra{i}"] = big
    with pytest.raises(CheckpointError, match="more numbers than the file holds"):
        read_network(saved_bytes(state), "shared.pth", max_bytes=50 * 2**20)


def test_real_networks_still_load(tmp_path):
    from cifar_core.training.models import MODELS
    for name in MODELS:
        model = MODELS[name].build(10, None)
        (tmp_path / f"{name}.pth").write_bytes(saved_bytes(model.state_dict()))
        assert load_checkpoint(tmp_path / f"{name}.pth").model_name == name
    channels_last = Net().to(memory_format=torch.channels_last)
    assert read_network(saved_bytes(channels_last.state_dict()), "cl.pth").model_name \
        == "tutorial"


# --- item 11 -------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_weights_that_are_not_numbers_are_refused_in_words(tmp_path, bad):
    state = Net().state_dict()
    state["conv2.weight"][0, 0, 0, 0] = bad
    store = RunStore(tmp_path / "runs")
    with pytest.raises(CheckpointError) as err:
        import_network(store, saved_bytes(state), "broken.pth")
    message = str(err.value)
    assert message.startswith("broken.pth holds weights that are not numbers"), message
    assert "nan" not in message.lower().replace("not numbers", "")
    assert store.list() == []


# --- item 18 -------------------------------------------------------------------------------------

def test_evaluate_on_a_network_of_another_class_count_says_both_counts(tmp_path,
                                                                        synthetic_dir):
    path = tmp_path / "five.pth"
    torch.save(Net(num_classes=5).state_dict(), path)
    out = subprocess.run([sys.executable, "-m", "cifar_core", "evaluate", str(path),
                          "--data-dir", str(synthetic_dir)], capture_output=True, text=True,
                         timeout=300, cwd=ROOT)
    said = out.stdout + out.stderr
    assert out.returncode != 0 and "Traceback" not in said
    assert "trained on 5 classes" in said and "10" in said, said
    assert "state_dict" not in said and "Error(s)" not in said, said


def test_the_import_of_another_class_count_says_both_counts(tmp_path):
    store = RunStore(tmp_path / "runs")
    with pytest.raises(CheckpointError) as err:
        import_network(store, saved_bytes(Net(num_classes=5).state_dict()), "five.pth")
    message = str(err.value)
    assert "trained on 5 classes" in message and "CIFAR-10 has 10" in message, message
    assert "tells 5 classes apart" not in message


# --- item 20 -------------------------------------------------------------------------------------

def report(step: int, reported_at: float | None, elapsed: float) -> StatsEvent:
    return StatsEvent(epoch=1, minibatch=step, step=step, images_seen=step * 4, loss=2.0,
                      images_per_s=500.0, elapsed_s=elapsed, fraction_done=0.3, eta_s=639.0,
                      images_per_epoch=50_000, reported_at=reported_at)


@pytest.fixture
def running_run(tmp_path):
    store = RunStore(tmp_path / "runs")
    run = store.create(TrainConfig(epochs=2, log_every=100).to_dict(), "/data", "test")
    store.set_running(run.id, 123)
    return store.get(run.id)


def test_a_run_that_stopped_reporting_says_so_instead_of_a_stale_estimate(running_run):
    now = 10_000.0
    # 20 reports in 40 s: one every 2 s. The last came 75 s ago (the process was frozen).
    frozen = run_progress(running_run, [report(2000, now - 75, 40.0)], now=now)
    assert "left" not in frozen.text and "images/s" not in frozen.text, frozen.text
    assert "no loss report for 1 min 15 s" in frozen.text
    assert "one usually comes every 2 s" in frozen.text
    assert frozen.eta_s is None and frozen.images_per_s is None
    # A report a few intervals late is still within the usual.
    fresh = run_progress(running_run, [report(2000, now - 6, 40.0)], now=now)
    assert "about 10 min 39 s left" in fresh.text and "500 images/s" in fresh.text


def test_a_slow_reporter_is_not_called_silent_before_its_usual_interval(running_run):
    now = 10_000.0
    # One report every 60 s: 75 s of quiet is not yet unusual.
    slow = run_progress(running_run, [report(200, now - 75, 120.0)], now=now)
    assert "left" in slow.text, slow.text


def test_reports_made_before_they_carried_a_time_keep_the_estimate(running_run):
    old = run_progress(running_run, [report(2000, None, 40.0)], now=10_000.0)
    assert "about 10 min 39 s left" in old.text


def test_a_training_stamps_each_loss_report_with_its_time(tiny_data):
    from cifar_core.training.loop import build_model, train
    config = TrainConfig(epochs=1, batch_size=10, log_every=2, seed=0)
    before = time.time()
    events = list(train(config, tiny_data, build_model(config, 10)))
    stamps = [e.reported_at for e in events if isinstance(e, StatsEvent)]
    assert stamps and all(before <= s <= time.time() for s in stamps)
    assert stamps == sorted(stamps)


# --- item 12 -------------------------------------------------------------------------------------

def test_lr_find_is_refused_in_words_when_it_would_not_fit_in_memory(monkeypatch):
    from conftest import in_memory_data

    import cifar_core.training.memory
    from cifar_core.errors import ConfigError
    from cifar_core.training.lr_find import find_learning_rate
    data = in_memory_data(train_n=2000, test_n=10)
    config = TrainConfig(batch_size=2000, seed=0)
    needed = cifar_core.training.memory.training_memory(config, 10, images=2000)
    # A machine with a tenth of what the test needs free.
    monkeypatch.setattr(cifar_core.training.memory, "available_bytes", lambda device: needed // 10)
    with pytest.raises(ConfigError) as err:
        find_learning_rate(config, data, steps=5)
    message = str(err.value)
    assert err.value.field == "batch_size"
    assert "needs about" in message and "memory" in message and "at most" in message, message
    # The batch it proposes fits what is free.
    proposed = int(message.split("at most ")[1].split(" ")[0].replace(",", ""))
    assert 0 < proposed < 2000
    assert cifar_core.training.memory.training_memory(config, 10, images=proposed) <= \
        cifar_core.training.memory.MEMORY_SHARE * needed // 10


def test_the_memory_estimate_grows_with_the_batch_and_the_network():
    from cifar_core.training.memory import training_memory
    small = training_memory(TrainConfig(batch_size=4), 10)
    big_batch = training_memory(TrainConfig(batch_size=50_000), 10)
    resnet = training_memory(TrainConfig(batch_size=50_000, model="resnet18"), 10)
    assert small < big_batch < resnet
    # ResNet-18 at a batch of 50,000 (the 13 GB and more) is far beyond a few GB.
    assert resnet > 13 * 2**30


def test_lr_find_with_room_enough_runs_as_before(tiny_data):
    from cifar_core.training.lr_find import find_learning_rate
    finding = find_learning_rate(TrainConfig(batch_size=10, seed=0), tiny_data, steps=5)
    assert len(finding.lrs) >= 1


OUT_OF_MEMORY = ("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't "
                 "allocate memory: you tried to allocate 13421772800 bytes. Error code 12 "
                 "(Cannot allocate memory)")


@pytest.mark.parametrize("error", [RuntimeError(OUT_OF_MEMORY), MemoryError(),
                                   torch.OutOfMemoryError("CUDA out of memory. Tried to "
                                                          "allocate 2.00 GiB")])
def test_a_training_out_of_memory_ends_with_a_plain_reason(tmp_path, tiny_data, synthetic_dir,
                                                           monkeypatch, error):
    import cifar_core.runs.pipeline
    from cifar_core.runs.pipeline import execute_run

    def runs_out(*args, **kwargs):
        raise error
        yield  # (a generator, as train is)

    monkeypatch.setattr(cifar_core.runs.pipeline, "train", runs_out)
    store = RunStore(tmp_path / "runs")
    config = TrainConfig(epochs=1, batch_size=10, seed=0)
    run = store.create(config.to_dict(), str(synthetic_dir), origin="test", status="running")
    ended = execute_run(store, run.id)
    assert ended.status == "failed"
    assert ended.message.startswith("The training ran out of memory"), ended.message
    assert "batch" in ended.message and "enforce" not in ended.message
    assert "DefaultCPUAllocator" not in ended.message
    if isinstance(error, RuntimeError) and not isinstance(error, torch.OutOfMemoryError):
        assert "12.5 GB" in ended.message


@pytest.mark.parametrize("field, value", [("classes", 5), ("classes", [1, 2, 3]),
                                          ("config", "tutorial"), ("metrics", [1])])
def test_a_checkpoint_whose_parts_are_of_the_wrong_kind_is_refused_in_words(field, value):
    saved = {"format": FORMAT, "model": "tutorial", "state_dict": Net().state_dict(),
             "classes": None, "config": {}, "metrics": {}, field: value}
    with pytest.raises(CheckpointError) as err:
        read_network(saved_bytes(saved), "odd.pth")
    assert str(err.value).startswith("odd.pth is damaged"), str(err.value)


def test_a_run_quiet_at_an_epoch_end_is_said_to_be_testing(running_run):
    now = 10_000.0
    at_end = StatsEvent(epoch=1, minibatch=12_500, step=12_500, images_seen=50_000, loss=2.0,
                        images_per_s=500.0, elapsed_s=100.0, fraction_done=0.5, eta_s=100.0,
                        images_per_epoch=50_000, reported_at=now - 75)
    quiet = run_progress(running_run, [at_end], now=now)
    assert "testing the network after epoch 1" in quiet.text and "left" not in quiet.text, \
        quiet.text
