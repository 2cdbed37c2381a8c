"""Issue 28's recipe settings, each checked by hand on something tiny: weight averaging
(training.averaging), the alternating flip (augment, speed.minibatches), multi-crop and
selective test-time augmentation (augment.tta_logits, the export), Muon for the filters
(training.muon, recipe), compiling (training.compiled); each setting's validation, and the
same weights for the same seed with each one."""

from __future__ import annotations

import json
import zipfile
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import in_memory_data
from torch import nn

from cifar_core.data.dataset import OFFICIAL_CLASSES, normalize
from cifar_core.errors import ConfigError
from cifar_core.share import network
from cifar_core.share.network import export_network
from cifar_core.training import compiled, loop
from cifar_core.training import muon as muon_module
from cifar_core.training.augment import tta_logits
from cifar_core.training.averaging import (
    EMA_DECAY,
    WeightAverage,
    ema_decay,
    lookahead_decay,
)
from cifar_core.training.checkpoint import load_checkpoint, save_checkpoint
from cifar_core.training.config import PRESETS, TrainConfig, plain_recipe, settings
from cifar_core.training.evaluation import predict_probabilities
from cifar_core.training.loop import build_model, train
from cifar_core.training.models import MODELS
from cifar_core.training.muon import NS_COEFFICIENTS, Muon, newton_schulz
from cifar_core.training.recipe import make_optimizers
from cifar_core.training.speed import open_step, splits_batches
from cifar_core.training.speed.minibatches import Minibatches

NEW_SETTINGS = ("averaging", "alternating_flip", "tta_unsure_below", "muon_lr", "compile")


@pytest.fixture(scope="module")
def data():
    return in_memory_data(train_n=60, test_n=20)


def small(**changes) -> TrainConfig:
    """A few steps of the tutorial's network with the fast recipe's optimizer (Nesterov: the
    autograd step, as every new setting but averaging needs; a tenth of the fast network's
    time)."""
    return TrainConfig(**{**dict(model="tutorial", epochs=2, batch_size=20, seed=5,
                                 device="cpu", lr=0.05, momentum=0.85, nesterov=True,
                                 augment="flip+translate", tta="flip", log_every=100),
                          **changes})


@pytest.fixture(scope="module")
def plain(data) -> nn.Module:
    """small()'s network, trained without any of the new settings."""
    return trained(small(), data)[0]


def trained(config: TrainConfig, data) -> tuple[nn.Module, list]:
    model = build_model(config, len(data.classes), data.shape)
    return model, list(train(config, data, model))


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# --- the settings ------------------------------------------------------------------------------

def test_each_new_setting_is_advanced_and_off_by_default_and_in_the_tutorials_presets():
    declared = settings()
    off = TrainConfig()
    for name in NEW_SETTINGS:
        assert declared[name].advanced, name
        assert declared[name].flag == "--" + name.replace("_", "-")
    assert (off.averaging, off.alternating_flip, off.tta_unsure_below, off.muon_lr,
            off.compile) == ("none", False, 1.0, 0.0, False)
    # (the CPU presets turn Muon on, the ablation's keep, and the gpu preset airbench's GPU
    # tricks: bench/RESULTS.md, "Issue 28")
    for preset_id in ("tutorial", "quick", "fashion-5min", "teach-1min"):
        assert not set(NEW_SETTINGS) & set(PRESETS[preset_id].values), preset_id
    assert plain_recipe(TrainConfig(averaging="ema"))  # beside the written-out step too
    assert not plain_recipe(TrainConfig(muon_lr=0.2))
    assert not plain_recipe(TrainConfig(compile=True))


@pytest.mark.parametrize("changes, field, words", [
    (dict(averaging="swa"), "averaging", "one of none, ema, lookahead"),
    (dict(muon_lr=-0.1), "muon_lr", "between 0 and 10"),
    (dict(tta="flip", tta_unsure_below=1.5), "tta_unsure_below", "at most 1"),
    (dict(tta="flip", tta_unsure_below=0.0), "tta_unsure_below", "above 0"),
    (dict(tta="none", tta_unsure_below=0.9), "tta_unsure_below", "needs a test-time"),
    (dict(augment="none", alternating_flip=True), "alternating_flip", "flip or flip+translate"),
    (dict(compile="yes"), "compile", "on or off"),
])
def test_each_new_setting_refuses_what_cannot_work_naming_itself(changes, field, words):
    with pytest.raises(ConfigError) as caught:
        TrainConfig(**changes)
    assert caught.value.field == field
    assert words in str(caught.value)


def test_the_new_settings_off_values_and_edges_are_accepted():
    TrainConfig(muon_lr=0.0, tta_unsure_below=1.0)  # off
    TrainConfig(muon_lr=10.0, tta="flip", tta_unsure_below=0.01, augment="flip",
                alternating_flip=True, averaging="lookahead", compile=True)


# --- weight averaging --------------------------------------------------------------------------

def steps_of(model: nn.Linear, average: WeightAverage, weights: list[list[float]]) -> None:
    """'Train' the model by setting its weights to each of `weights` in turn."""
    for w in weights:
        average.before_step()
        with torch.no_grad():
            model.weight.copy_(torch.tensor([w]))
        average.after_step()


def test_ema_weights_are_the_hand_computed_average_and_the_model_gets_them_at_the_end():
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0]]))
    average = WeightAverage(model, "ema", total_steps=4)
    steps_of(model, average, [[3.0, 0.0], [5.0, 2.0], [1.0, 1.0]])
    # By hand: the decay after step t is min(0.99, (1 + t) / (10 + t)): 2/11, 3/12, 4/13.
    assert [ema_decay(t) for t in (1, 2, 3, 1000)] == pytest.approx([2 / 11, 3 / 12, 4 / 13,
                                                                    EMA_DECAY])
    by_hand = np.array([1.0, -2.0])
    for d, w in zip((2 / 11, 3 / 12, 4 / 13), ([3.0, 0.0], [5.0, 2.0], [1.0, 1.0]),
                    strict=True):
        by_hand = d * by_hand + (1 - d) * np.array(w)
    with average.averaged():  # a test sees the average ...
        assert model.weight.detach().numpy()[0] == pytest.approx(by_hand, abs=1e-6)
    assert model.weight.tolist() == [[1.0, 1.0]]  # ... and training goes on from its own
    steps_of(model, average, [[0.0, 4.0]])  # the last of the 4 steps: the average for good
    by_hand = 5 / 14 * by_hand + 9 / 14 * np.array([0.0, 4.0])
    assert model.weight.detach().numpy()[0] == pytest.approx(by_hand, abs=1e-6)


def test_lookahead_pulls_the_weights_back_to_the_average_every_5_steps_as_airbench():
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    average = WeightAverage(model, "lookahead", total_steps=12)
    steps_of(model, average, [[1.0], [2.0], [3.0], [4.0]])
    assert model.weight.item() == 4.0  # nothing happens between the 5-step points
    steps_of(model, average, [[10.0]])
    decay = 0.95 ** 5 * (5 / 12) ** 3
    assert lookahead_decay(5, 12) == pytest.approx(decay)
    slow = 0.0 + (1 - decay) * (10.0 - 0.0)
    assert model.weight.item() == pytest.approx(slow)
    steps_of(model, average, [[20.0]] * 5)
    slow = slow + (1 - lookahead_decay(10, 12)) * (20.0 - slow)
    assert model.weight.item() == pytest.approx(slow)
    steps_of(model, average, [[30.0], [40.0]])  # the end: the steps since the last pull go
    assert model.weight.item() == pytest.approx(slow)


def test_a_lookahead_shorter_than_its_first_pull_keeps_the_trained_weights():
    model = nn.Linear(1, 1, bias=False)
    average = WeightAverage(model, "lookahead", total_steps=3)
    steps_of(model, average, [[1.0], [2.0]])
    with average.averaged():
        assert model.weight.item() == 2.0
    steps_of(model, average, [[3.0]])
    assert model.weight.item() == 3.0  # not the random start


@pytest.mark.parametrize("mode", ["ema", "lookahead"])
def test_a_run_with_weight_averaging_is_repeated_by_its_seed_and_tested_on_the_average(
        mode, data, plain):
    first, events = trained(small(averaging=mode), data)
    again, _ = trained(small(averaging=mode), data)
    assert events[-1].status == "completed"
    assert same_weights(first, again) and not same_weights(first, plain)
    # The last test was of the network the run keeps (the averaged one).
    tested = predict_probabilities(first, data.test_images, tta="flip")
    loss = -tested[torch.arange(len(tested)), data.test_labels].log().mean().item()
    assert [e for e in events if e.kind == "epoch"][-1].test_loss == pytest.approx(loss)


@pytest.mark.parametrize("threads, step", [
    (1, "written-out step (backward"),  # one core: the written-out step
    (2, "written-out step, each minibatch split"),  # two: its halves on two processes
])
def test_weight_averaging_works_beside_the_written_out_steps(threads, step, data):
    if threads == 2 and not splits_batches(4, 2):
        pytest.skip("this machine does not split batches (one core, or no fork)")
    config = TrainConfig(epochs=1, batch_size=4, seed=2, device="cpu", averaging="lookahead",
                         train_size=40, log_every=100)
    model = build_model(config, 10)
    events = list(train(config, data, model, threads=threads))
    assert events[-1].training_step.startswith(step)
    plain = build_model(config, 10)
    list(train(TrainConfig.from_dict({**config.to_dict(), "averaging": "none"}), data, plain,
               threads=threads))
    again = build_model(config, 10)
    list(train(config, data, again, threads=threads))
    assert same_weights(model, again) and not same_weights(model, plain)
    # The last test was of the averaged network the run keeps.
    tested = predict_probabilities(model, data.test_images)
    loss = -tested[torch.arange(len(tested)), data.test_labels].log().mean().item()
    assert [e for e in events if e.kind == "epoch"][-1].test_loss == pytest.approx(loss)


# --- the alternating flip ----------------------------------------------------------------------

def flips_seen(batches: Minibatches, originals: torch.Tensor, epochs: int,
               generator: torch.Generator) -> list[dict[int, bool]]:
    """For each epoch: picture index -> whether it came mirrored."""
    plain, mirrored = normalize(originals), normalize(originals).flip(3)
    seen = []
    for _ in range(epochs):
        flipped = {}
        for inputs, _labels in batches.epoch(generator):
            for image in inputs:
                as_is = [i for i in range(len(plain)) if torch.equal(image, plain[i])]
                turned = [i for i in range(len(plain)) if torch.equal(image, mirrored[i])]
                assert len(as_is) + len(turned) == 1  # each picture tells which it is
                flipped[(as_is or turned)[0]] = bool(turned)
        seen.append(flipped)
    return seen


def test_the_alternating_flip_mirrors_each_picture_on_exactly_alternate_epochs(data):
    images = data.train_images[:24]
    subset = torch.arange(24)
    batches = Minibatches(data, subset, 5, torch.device("cpu"), augment="flip",
                          alternating_flip=True)
    seen = flips_seen(batches, images, 4, torch.Generator().manual_seed(0))
    for epoch in range(3):
        assert len(seen[epoch]) == 24
        assert all(seen[epoch + 1][i] != seen[epoch][i] for i in range(24)), epoch
    assert 0 < sum(seen[0].values()) < 24  # where each picture starts is drawn
    # A coin toss each epoch (the default) shows some picture the same way twice running.
    tossed = flips_seen(Minibatches(data, subset, 5, torch.device("cpu"), augment="flip"),
                        images, 4, torch.Generator().manual_seed(0))
    assert any(tossed[e + 1][i] == tossed[e][i] for e in range(3) for i in range(24))


def test_a_run_with_the_alternating_flip_is_repeated_by_its_seed(data, plain):
    first, _ = trained(small(alternating_flip=True), data)
    again, _ = trained(small(alternating_flip=True), data)
    assert same_weights(first, again) and not same_weights(first, plain)


# --- multi-crop and selective test-time augmentation -------------------------------------------

def column_weights(x: torch.Tensor) -> torch.Tensor:
    """A 'network' of 2 classes on 1 x 3 x 3 pictures: logit 0 weighs the pixels by their
    column (0, 1, 2), logit 1 by their row."""
    w = torch.tensor([0.0, 1.0, 2.0])
    return torch.stack([(x * w).sum((1, 2, 3)), (x * w[:, None]).sum((1, 2, 3))], dim=1)


def test_multi_crop_tta_on_a_3x3_picture_is_the_hand_computed_weighted_mean():
    picture = torch.tensor([[[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]]])
    # By hand: the picture moved a pixel up-left (reflected at the edge: the last row and
    # column come back as the second-to-last) and down-right (the first as the second).
    up_left = torch.tensor([[[[5.0, 6.0, 5.0], [8.0, 9.0, 8.0], [5.0, 6.0, 5.0]]]])
    down_right = torch.tensor([[[[5.0, 4.0, 5.0], [2.0, 1.0, 2.0], [5.0, 4.0, 5.0]]]])

    def pair(x):  # a view and its mirror image, by hand
        return (column_weights(x) + column_weights(x[..., [2, 1, 0]])) / 2

    by_hand = 0.5 * pair(picture) + 0.25 * pair(up_left) + 0.25 * pair(down_right)
    # The numbers, worked out: mirrored, every column weighs 1 (logit 0: the pixels' sum, 45,
    # 57 and 33); rows keep their weights (logit 1: 63, 57 and 33).
    assert by_hand.tolist() == [[0.5 * 45 + 0.25 * 57 + 0.25 * 33,
                                 0.5 * 63 + 0.25 * 57 + 0.25 * 33]]
    assert torch.allclose(tta_logits(column_weights, picture, "flip+translate"), by_hand)


def sure_and_unsure(x: torch.Tensor) -> torch.Tensor:
    """A 'network' sure of the pictures whose first pixel is bright, unsure of the others,
    and telling left from right (so the views change its answer)."""
    bright = x[:, 0, 0, 0:1] > 0
    sideways = x[:, 0, 0, :].mul(torch.arange(x.shape[3], dtype=x.dtype)).sum(1, keepdim=True)
    return torch.where(bright, torch.tensor([10.0, 0.0]), torch.tensor([0.1, 0.0])) \
        + 0.01 * torch.cat([sideways, -sideways], 1)


def test_selective_tta_leaves_the_sure_pictures_logits_untouched_and_augments_the_others():
    pictures = torch.randn(6, 1, 4, 4)
    pictures[:3, 0, 0, 0] = 1.0  # sure
    pictures[3:, 0, 0, 0] = -1.0  # unsure
    plain = sure_and_unsure(pictures)
    full = tta_logits(sure_and_unsure, pictures, "flip+translate")
    got = tta_logits(sure_and_unsure, pictures, "flip+translate", unsure_below=0.9)
    assert torch.equal(got[:3], plain[:3])
    assert torch.allclose(got[3:], full[3:], atol=1e-6)
    assert torch.equal(tta_logits(sure_and_unsure, pictures, "flip+translate", 1.0), full)
    assert not torch.allclose(full[3:], plain[3:], atol=1e-4)  # the views do change them


def test_a_run_with_selective_tta_is_tested_and_kept_with_it(data, tmp_path, monkeypatch):
    asked, original = [], loop.predict_probabilities

    def recorded(*args, **options):
        asked.append(options)
        return original(*args, **options)

    monkeypatch.setattr(loop, "predict_probabilities", recorded)
    config = small(epochs=1, tta="flip+translate", tta_unsure_below=0.2)
    model, events = trained(config, data)
    assert events[-1].status == "completed"
    assert [o["tta_unsure_below"] for o in asked] == [0.2]  # the test after the epoch
    saved = save_checkpoint(tmp_path / "n.pth", model, config.to_dict(), data.classes, {})
    assert load_checkpoint(saved).prediction_options()["tta_unsure_below"] == 0.2


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_a_network_with_selective_tta_exports_it_inside_the_file(fmt, tmp_path):
    torch.manual_seed(3)
    model = MODELS["tutorial"].build(10, None, (3, 32, 32)).eval()
    images = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(1))
    # A threshold with half the pictures on each side, well apart from any of them.
    tops = predict_probabilities(model, images).max(1).values.sort().values
    threshold = float((tops[19] + tops[20]) / 2)
    config = {"model": "tutorial", "tta": "flip", "tta_unsure_below": threshold}
    path = save_checkpoint(tmp_path / "n.pth", model, config, OFFICIAL_CLASSES,
                           {"accuracy": 10.0, "test_images": 10})
    expected = predict_probabilities(model, images, tta="flip", tta_unsure_below=threshold)
    every = predict_probabilities(model, images, tta="flip")
    assert not torch.allclose(expected, every, atol=1e-5)  # some pictures kept their answer
    done = export_network(None, str(path), fmt, tmp_path / "out.zip")
    spec = network.FORMATS[fmt]
    with zipfile.ZipFile(done.path) as archive:
        names = {n.split("/", 1)[1]: n for n in archive.namelist()}
        (tmp_path / spec.file).write_bytes(archive.read(names[spec.file]))
        card = json.loads(archive.read(names["model_card.json"]))
        text = archive.read(names["model_card.md"]).decode()
    got = spec.load(tmp_path / spec.file)(normalize(images).numpy())
    assert np.abs(got - expected.numpy()).max() < 1e-5
    assert card["test_time_augmentation_unsure_below"] == threshold
    assert f"below {threshold:g}" in text


# --- Muon ---------------------------------------------------------------------------------------

def newton_schulz_by_hand(g: np.ndarray, steps: int = 5) -> np.ndarray:
    a, b, c = NS_COEFFICIENTS
    x = g / np.linalg.norm(g)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x


def test_one_muon_update_of_a_filter_is_the_hand_computed_newton_schulz_step():
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(2, 1, 2, 2))  # 2 filters of 1 channel, 2 x 2: a 2 x 4 matrix
    g = rng.normal(size=(2, 1, 2, 2))
    weight = nn.Parameter(torch.tensor(w0, dtype=torch.float64))
    weight.grad = torch.tensor(g, dtype=torch.float64)
    lr, momentum = 0.1, 0.6
    Muon([weight], lr=lr, momentum=momentum, nesterov=True).step()
    # By hand: buffer = g; Nesterov: g + momentum x buffer; the weight scaled to norm
    # sqrt(2 rows); minus lr x the orthogonalised update.
    update = newton_schulz_by_hand(((1 + momentum) * g).reshape(2, 4))
    expected = w0 * np.sqrt(2) / np.linalg.norm(w0) - lr * update.reshape(w0.shape)
    assert weight.detach().numpy() == pytest.approx(expected, abs=1e-7)  # (eps 1e-7 in its norm)
    # The update is nearly orthogonal: both its singular values near 1 (0.5 to 1.5).
    singular = np.linalg.svd(update, compute_uv=False)
    assert np.all((singular > 0.5) & (singular < 1.5))
    assert newton_schulz(torch.tensor(g.reshape(4, 2))).shape == (4, 2)  # tall: transposed


def test_muon_takes_the_filters_and_sgd_the_rest(data):
    config = small(model="fast", width=4, muon_lr=0.24)
    model = build_model(config, 10)
    muon, sgd = make_optimizers(model, config)
    filters = {id(p) for g in muon.param_groups for p in g["params"]}
    rest = {id(p) for g in sgd.param_groups for p in g["params"]}
    learning = {id(p) for p in model.parameters() if p.requires_grad}
    assert filters == {id(p) for p in model.parameters() if p.requires_grad and p.ndim == 4}
    assert filters and not filters & rest and filters | rest == learning
    assert isinstance(muon, Muon) and muon.param_groups[0]["lr"] == 0.24
    assert all(g["nesterov"] for g in sgd.param_groups)
    assert len(make_optimizers(model, small(model="fast", width=4))) == 1  # off: SGD for all


def test_a_muon_run_is_repeated_by_its_seed(data, plain):
    first, events = trained(small(muon_lr=0.2), data)
    again, _ = trained(small(muon_lr=0.2), data)
    assert events[-1].status == "completed"
    assert same_weights(first, again) and not same_weights(first, plain)


# --- compiling ----------------------------------------------------------------------------------

def test_where_compiling_fails_the_run_trains_without_it_and_says_why(data, plain,
                                                                     monkeypatch):
    def broken(model, **options):
        def fails(*args, **kwargs):
            raise RuntimeError("no C++ compiler found\nmore")
        return fails

    monkeypatch.setattr(torch, "compile", broken)
    model, events = trained(small(compile=True), data)
    assert events[-1].status == "completed"
    assert "not compiled" in events[-1].message and "no C++ compiler found" in events[-1].message
    assert same_weights(model, plain)


def test_where_torch_compile_is_missing_the_run_says_so(data, monkeypatch):
    monkeypatch.delattr(torch, "compile")
    assert compiled.compile_problem() == "this PyTorch has no torch.compile"
    _, events = trained(small(epochs=1, compile=True), data)
    assert "not compiled: this PyTorch has no torch.compile" in events[-1].message


def test_a_compiled_run_counts_and_says_its_compile_time_and_repeats_by_its_seed(
        data, plain, monkeypatch):
    original, compiles = torch.compile, []

    def eager(model, **options):  # dynamo's graphs run eagerly: the wiring, in a second
        compiles.append(options)
        return original(model, backend="eager", **options)

    monkeypatch.setattr(torch, "compile", eager)
    torch._dynamo.reset()
    first, events = trained(small(compile=True), data)
    again, _ = trained(small(compile=True), data)
    assert compiles and compiles[0] == {"dynamic": False}
    assert events[-1].status == "completed"
    assert "Compiling the training step took" in events[-1].message
    # the compiling's seconds apart too (bench/gpu_check.sh reports the training without them)
    assert 0 < events[-1].compile_s <= events[-1].train_s
    assert f"took {events[-1].compile_s:.1f} s" in events[-1].message
    assert same_weights(first, again) and same_weights(first, plain)  # the same arithmetic


def test_a_run_that_does_not_compile_spends_no_seconds_compiling(data, monkeypatch):
    _, events = trained(small(epochs=1), data)
    assert events[-1].compile_s == 0
    monkeypatch.delattr(torch, "compile")  # Compile on, where it cannot be: none either
    _, events = trained(small(epochs=1, compile=True), data)
    assert events[-1].compile_s == 0


def test_compiling_goes_with_the_autograd_step_not_the_written_out_one(data):
    config = TrainConfig(epochs=1, batch_size=4, seed=2, device="cpu", compile=True)
    model = build_model(config, 10)
    with open_step(model, config, torch.device("cpu"), threads=1) as step:
        assert step.description.startswith("tutorial step")
        assert step.stepper.compilation is not None



@pytest.mark.parametrize("device, precision, expected", [
    ("cpu", "fp32", True),  # oneDNN's convolutions want it (bench/RESULTS.md)
    ("cuda", "bf16", True),  # the tensor cores' half-size numbers want it (the gpu preset)
    ("cuda", "fp16", True),
    ("cuda", "fp32", False),  # float32 on a GPU keeps PyTorch's usual layout
])
def test_the_layout_channels_last_where_it_pays(device, precision, expected):
    from cifar_core.training.speed import channels_last_for

    config = TrainConfig(model="fast", precision=precision, device=device)
    assert channels_last_for(config, torch.device(device)) is expected
    # the tutorial's network keeps its layout everywhere
    assert not channels_last_for(replace(config, model="tutorial"), torch.device(device))


# --- on a GPU (skipped where there is none) -----------------------------------------------------

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")


@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_every_new_setting_trains_the_fast_network_on_a_gpu_and_repeats_by_its_seed(
        precision, data):
    config = small(model="fast", width=8, device="cuda", precision=precision,
                   averaging="lookahead", alternating_flip=True, tta="flip+translate",
                   tta_unsure_below=0.9, muon_lr=0.24, schedule="warmup-linear")
    first, events = trained(config, data)
    again, _ = trained(config, data)
    assert events[-1].status == "completed", events[-1].message
    assert next(first.parameters()).device.type == "cuda"
    assert same_weights(first, again)


@needs_cuda
def test_compiling_on_a_gpu_trains_and_says_its_time(data):
    config = small(model="fast", width=8, device="cuda", epochs=1, compile=True)
    model, events = trained(config, data)
    assert events[-1].status == "completed"
    assert "Compiling the training step took" in events[-1].message
    assert not same_weights(model, build_model(config, 10))  # it learned


@needs_cuda
def test_the_gpu_preset_trains_compiled_and_channels_last_on_a_gpu(data):
    """What bench/gpu_check.sh times, on a few pictures: the preset's every setting but its
    size."""
    from cifar_core.training.config import preset_values
    from cifar_core.training.speed import open_step

    config = TrainConfig(**{**preset_values("gpu"), "width": 8, "epochs": 2, "batch_size": 20,
                            "seed": 3})
    model, events = trained(config, data)
    assert events[-1].status == "completed", events[-1].message
    assert 0 < events[-1].compile_s < events[-1].train_s
    with open_step(build_model(config, 10), config, torch.device("cuda")) as step:
        assert step.stepper.layout == torch.channels_last


def test_the_pages_speed_measure_and_lr_finder_do_not_compile_in_the_dashboards_process(
        data, monkeypatch):
    # Compiling takes a minute or more on a CPU: the Train page's estimate and the learning
    # rate finder (which do not depend on it: same arithmetic) must not wait for it.
    from cifar_core.training.estimate import measure_images_per_s
    from cifar_core.training.lr_find import find_learning_rate

    compiles = []
    monkeypatch.setattr(torch, "compile", lambda model, **options: compiles.append(model))
    config = small(batch_size=8, compile=True)
    assert measure_images_per_s(config, threads=1, budget_s=0.05) > 0
    find_learning_rate(config, data, steps=10)
    assert compiles == []


def test_muon_updates_cpu_weights_on_one_thread_and_gives_the_threads_back(monkeypatch):
    # Its products are tiny: two threads waiting on each other made it many times slower.
    seen, original = [], muon_module.newton_schulz

    def recorded(matrix, *args):
        seen.append(torch.get_num_threads())
        return original(matrix, *args)

    monkeypatch.setattr(muon_module, "newton_schulz", recorded)
    weight = nn.Parameter(torch.randn(4, 2, 3, 3))
    weight.grad = torch.randn(4, 2, 3, 3)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        Muon([weight], lr=0.1).step()
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
