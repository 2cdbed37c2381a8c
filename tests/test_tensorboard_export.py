"""share.tensorboard and `runs export RUN... --tensorboard DIR`: each run's loss curve, test
accuracy per epoch and settings (HParams) as TensorBoard event files, read back here with
TensorBoard's own reader."""

from __future__ import annotations

import sys

import pytest
from conftest import finish_run, run_cli
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from cifar_core.runs.store import RunStore
from cifar_core.training.events import EpochEvent, StatsEvent


def read_back(folder):
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    return events


def hparams_of(events) -> dict:
    content = events.PluginTagToContent("hparams")
    for data in content.values():
        parsed = plugin_data_pb2.HParamsPluginData.FromString(data)
        if parsed.HasField("session_start_info"):
            return {name: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
                    for name, value in parsed.session_start_info.hparams.items()}
    raise AssertionError("no hparams written")


def test_each_runs_curves_and_settings_are_read_back_by_tensorboard(
        capsys, runs_dir, data_dir, tmp_path):
    first = finish_run(runs_dir, data_dir, epochs=2)
    second = finish_run(runs_dir, data_dir, lr=0.02, batch_size=5)
    out = tmp_path / "tb"
    code, printed, err = run_cli(capsys, "runs", "export", first, second, "--tensorboard", out,
                                 "--runs-dir", runs_dir)
    assert code == 0, err
    assert "tensorboard --logdir" in printed and str(out) in printed

    store = RunStore(runs_dir)
    for run_id in (first, second):
        events = read_back(out / run_id)
        kept = [e for _, e in store.events(run_id)]
        losses = [e for e in kept if isinstance(e, StatsEvent)]
        epochs = [e for e in kept if isinstance(e, EpochEvent)]
        loss = events.Scalars("train/loss")
        assert [s.step for s in loss] == [e.images_seen for e in losses]
        assert [s.value for s in loss] == pytest.approx([e.loss for e in losses], rel=1e-6)
        accuracy = events.Scalars("test/accuracy")
        assert [s.step for s in accuracy] == [e.images_seen for e in epochs]
        assert [s.value for s in accuracy] == pytest.approx([e.test_accuracy for e in epochs])
        test_loss = events.Scalars("test/loss")  # beside the training loss: over-fitting
        assert [s.step for s in test_loss] == [e.images_seen for e in epochs]
        assert [s.value for s in test_loss] == pytest.approx([e.test_loss for e in epochs],
                                                             rel=1e-6)
        run = store.get(run_id)
        hparams = hparams_of(events)
        assert hparams["lr"] == pytest.approx(run.config["lr"])
        assert hparams["batch_size"] == run.config["batch_size"]
        assert hparams["model"] == run.config["model"] and hparams["dataset"] == run.dataset
    assert len(read_back(out / first).Scalars("test/accuracy")) == 2


def test_exporting_again_replaces_a_runs_files_and_an_unknown_run_writes_nothing(
        capsys, runs_dir, data_dir, tmp_path):
    run_id = finish_run(runs_dir, data_dir)
    out = tmp_path / "tb"
    for _ in range(2):
        code, _, err = run_cli(capsys, "runs", "export", run_id, "--tensorboard", out,
                               "--runs-dir", runs_dir)
        assert code == 0, err
    points = read_back(out / run_id).Scalars("train/loss")
    assert len(points) == len({p.step for p in points})  # one curve, not two on top
    assert [p.name for p in out.iterdir()] == [run_id]

    code, _, err = run_cli(capsys, "runs", "export", run_id, "nope-1", "--tensorboard",
                           tmp_path / "other", "--runs-dir", runs_dir)
    assert code == 2 and err.startswith("error: There is no run 'nope-1'")
    assert not (tmp_path / "other").exists()


def test_without_the_tensorboard_package_a_sentence_says_how_to_install_it(
        capsys, runs_dir, data_dir, tmp_path, monkeypatch):
    run_id = finish_run(runs_dir, data_dir)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if not installed
    code, _, err = run_cli(capsys, "runs", "export", run_id, "--tensorboard", tmp_path / "tb",
                           "--runs-dir", runs_dir)
    assert code == 2 and "pip install tensorboard" in err
    assert "Traceback" not in err and not (tmp_path / "tb").exists()


def test_a_folder_that_cannot_be_made_is_refused_in_a_sentence(
        capsys, runs_dir, data_dir, tmp_path):
    run_id = finish_run(runs_dir, data_dir)
    a_file = tmp_path / "taken"
    a_file.write_text("not a folder")
    code, _, err = run_cli(capsys, "runs", "export", run_id, "--tensorboard", a_file / "tb",
                           "--runs-dir", runs_dir)
    assert code == 2 and err.startswith("error: The TensorBoard files cannot be written")
