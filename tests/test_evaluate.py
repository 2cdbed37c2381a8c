"""cifar_core.training.evaluation: predictions, accuracy overall and per class, confusions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cifar_core.data.dataset import normalize
from cifar_core.training.evaluation import Evaluation, evaluate, predict, predict_probabilities
from cifar_core.training.models import Net

CLASSES = ("plane", "car", "bird", "cat")


@pytest.fixture
def hand_made() -> Evaluation:
    # 7 images of classes 0-2 (none of 'cat'); 4 right: indices 0, 2, 3, 6.
    return Evaluation(
        labels=np.array([0, 0, 1, 1, 2, 2, 2]),
        predicted=np.array([0, 1, 1, 1, 0, 3, 2]),
        confidence=np.array([0.9, 0.6, 0.8, 0.7, 0.95, 0.5, 0.4]),
        classes=CLASSES,
    )


def test_accuracy_is_percent_correct(hand_made):
    assert hand_made.accuracy == pytest.approx(100 * 4 / 7)
    empty = Evaluation(np.array([], int), np.array([], int), np.array([]), CLASSES)
    assert empty.accuracy == 0.0


def test_per_class_accuracy_table(hand_made):
    table = hand_made.per_class_accuracy()
    assert list(table.columns) == ["class", "correct", "total", "accuracy"]
    assert table["class"].tolist() == list(CLASSES)
    assert table["correct"].tolist() == [1, 2, 1, 0]
    assert table["total"].tolist() == [2, 2, 3, 0]
    assert table["accuracy"].iloc[:3].tolist() == pytest.approx([50.0, 100.0, 100 / 3])
    assert np.isnan(table["accuracy"].iloc[3])  # no images of that class: unknown, not 0 %


def test_confusion_matrix_counts_true_by_predicted(hand_made):
    matrix = hand_made.confusion_matrix()
    assert matrix.shape == (4, 4)
    assert matrix.sum() == 7
    assert matrix.diagonal().tolist() == hand_made.per_class_accuracy()["correct"].tolist()
    assert matrix[0, 1] == 1 and matrix[2, 0] == 1 and matrix[2, 3] == 1
    assert matrix.sum(axis=1).tolist() == [2, 2, 3, 0]


def test_most_confident_mistakes_are_wrong_and_sorted(hand_made):
    mistakes = hand_made.most_confident_mistakes()
    assert list(mistakes.columns) == ["index", "label", "predicted", "confidence", "correct"]
    assert mistakes["index"].tolist() == [4, 1, 5]
    assert not mistakes["correct"].any()
    assert mistakes["confidence"].tolist() == [0.95, 0.6, 0.5]
    assert (mistakes["label"] != mistakes["predicted"]).all()
    assert mistakes.iloc[0][["label", "predicted"]].tolist() == ["bird", "plane"]
    assert hand_made.most_confident_mistakes(count=2)["index"].tolist() == [4, 1]


def test_images_where_picks_one_confusion_cell(hand_made):
    assert hand_made.images_where(1, 1)["index"].tolist() == [2, 3]
    assert hand_made.images_where(2, 3)["index"].tolist() == [5]
    assert hand_made.images_where(3, 3).empty


def test_metrics_are_plain_json(hand_made):
    metrics = json.loads(json.dumps(hand_made.metrics()))
    assert metrics["accuracy"] == pytest.approx(100 * 4 / 7)
    assert metrics["per_class"] == {"plane": 50.0, "car": 100.0,
                                    "bird": pytest.approx(100 / 3), "cat": None}
    assert metrics["confusion"] == hand_made.confusion_matrix().tolist()
    assert metrics["test_images"] == 7


def test_predict_gives_the_most_likely_class_and_its_probability():
    torch.manual_seed(0)
    model = Net().train()
    images = torch.randint(0, 256, (23, 3, 32, 32), dtype=torch.uint8)

    predicted, confidence = predict(model, images, "cpu", batch_size=5)

    assert model.training  # left as it was
    with torch.no_grad():
        probs = torch.softmax(model.eval()(normalize(images)), dim=1)
    assert torch.equal(predicted, probs.argmax(dim=1))
    assert torch.allclose(confidence, probs.max(dim=1).values, atol=1e-6)
    same, _ = predict(model, images, "cpu", batch_size=1000)
    assert torch.equal(same, predicted)


def test_predict_probabilities_gives_every_class_summing_to_one():
    torch.manual_seed(0)
    model = Net(num_classes=4)
    images = torch.randint(0, 256, (7, 3, 32, 32), dtype=torch.uint8)
    probabilities = predict_probabilities(model, images, batch_size=3)
    assert probabilities.shape == (7, 4)
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(7), atol=1e-6)
    predicted, confidence = predict(model, images)
    assert torch.equal(probabilities.argmax(dim=1), predicted)
    assert torch.equal(probabilities.max(dim=1).values, confidence)


def test_prediction_uses_onednn_even_inside_a_training_that_turned_it_off(monkeypatch):
    """The test after each epoch runs inside training's settings (oneDNN off for tiny
    batches); evaluation must switch it back on, and leave training's settings as they were."""
    import sys

    from cifar_core.training.speed import cpu

    evaluate_module = sys.modules["cifar_core.training.evaluation"]

    seen = []

    def spy(model, x):
        seen.append(torch.backends.mkldnn.enabled)
        return model(x)

    monkeypatch.setattr(evaluate_module, "inference_logits", spy)
    with cpu.settings(threads=1, onednn=False):
        predict(Net(), torch.zeros(3, 3, 32, 32, dtype=torch.uint8))
        assert torch.backends.mkldnn.enabled is False and torch.get_num_threads() == 1
    assert seen == [True]


def test_predict_with_flip_tta_averages_the_answers_for_the_picture_and_its_mirror():
    torch.manual_seed(0)
    model = Net().eval()
    images = torch.randint(0, 256, (9, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        x = normalize(images)
        expected = torch.softmax((model(x) + model(x.flip(3))) / 2, dim=1)
    got = predict_probabilities(model, images, batch_size=4, tta="flip")
    assert torch.allclose(got, expected, atol=1e-6)
    assert not torch.allclose(got, predict_probabilities(model, images), atol=1e-4)
    predicted, _ = predict(model, images, tta="flip")
    assert torch.equal(predicted, expected.argmax(dim=1))


def test_predict_in_bf16_is_close_to_fp32_but_computed_otherwise():
    torch.manual_seed(0)
    model = Net()
    images = torch.randint(0, 256, (20, 3, 32, 32), dtype=torch.uint8)
    exact = predict_probabilities(model, images)
    rounded = predict_probabilities(model, images, precision="bf16")
    assert rounded.dtype == torch.float32
    assert torch.allclose(rounded, exact, atol=0.02) and not torch.equal(rounded, exact)


def test_evaluate_takes_a_checkpoints_prediction_options(tiny_data):
    torch.manual_seed(0)
    model = Net()
    plain = evaluate(model, tiny_data)
    flipped = evaluate(model, tiny_data, tta="flip")
    want, _ = predict(model, tiny_data.test_images, tta="flip")
    assert np.array_equal(flipped.predicted, want.numpy())
    assert not np.allclose(flipped.confidence, plain.confidence)


def test_predict_of_no_images_is_empty():
    predicted, confidence = predict(Net(), torch.empty(0, 3, 32, 32, dtype=torch.uint8))
    assert predicted.shape == (0,) and confidence.shape == (0,)


def test_evaluate_runs_over_the_whole_test_split(tiny_data):
    torch.manual_seed(0)
    model = Net()
    result = evaluate(model, tiny_data)
    predicted, _ = predict(model, tiny_data.test_images)
    assert len(result.labels) == len(tiny_data.test_labels) == 50
    assert np.array_equal(result.labels, tiny_data.test_labels.numpy())
    assert np.array_equal(result.predicted, predicted.numpy())
    assert result.classes == tiny_data.classes
    assert result.accuracy == pytest.approx(
        100 * float((predicted == tiny_data.test_labels).float().mean()))


def test_rows_confusion_table_and_most_confused():
    from cifar_core.training.evaluation import Evaluation

    ev = Evaluation(labels=np.array([0, 0, 1, 1, 1, 2]), predicted=np.array([0, 1, 2, 2, 1, 2]),
                    confidence=np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4]), classes=("a", "b", "c"))
    assert ev.most_confused() == (1, 2)  # two b's called c: the most frequent mistake
    table = ev.confusion_table()
    assert len(table) == 9 and table["images"].sum() == 6
    assert table.query("true == 'b' and predicted == 'c'")["images"].item() == 2
    rows = ev.rows([1, 4])
    assert rows["correct"].tolist() == [False, True]
    assert rows["label"].tolist() == ["a", "b"] and rows["predicted"].tolist() == ["b", "b"]
