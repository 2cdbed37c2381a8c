"""How good a trained network is: predictions, accuracy overall and per class, confusions."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from cifar_core.data.dataset import ImageData, normalize
from cifar_core.training.augment import tta_logits
from cifar_core.training.models import inference_logits
from cifar_core.training.recipe import autocast
from cifar_core.training.speed.cpu import inference_settings

# Measured fastest on a 2-core CPU (bench/RESULTS.md): conv1's output for 200 images (3.8 MB)
# still fits the caches; at 500 and more the element-wise passes wait on memory.
PREDICT_BATCH = 200


def predict(model: nn.Module, images: torch.Tensor, device: torch.device | str = "cpu",
            batch_size: int = PREDICT_BATCH, tta: str = "none",
            precision: str = "fp32",
            tta_unsure_below: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted class, confidence in 0..1) for uint8 images (N,C,H,W) of the shape the model
    was built for, returned on the CPU; the model is moved to `device` to compute them. `tta`,
    `precision` and `tta_unsure_below`: the training config's test-time augmentation, number
    format and selective test-time augmentation (augment.tta_logits)."""
    probabilities = predict_probabilities(model, images, device, batch_size, tta, precision,
                                          tta_unsure_below)
    if not len(probabilities):
        return torch.empty(0, dtype=torch.long), torch.empty(0)
    confidence, predicted = probabilities.max(dim=1)
    return predicted, confidence


@torch.inference_mode()
def predict_probabilities(model: nn.Module, images: torch.Tensor,
                          device: torch.device | str = "cpu",
                          batch_size: int = PREDICT_BATCH, tta: str = "none",
                          precision: str = "fp32",
                          tta_unsure_below: float | None = None) -> torch.Tensor:
    """Every class's probability (N, classes) for uint8 images (N,C,H,W), on the CPU; the
    model is moved to `device` to compute them. With evaluation's CPU settings (oneDNN on),
    also when called inside a training."""
    device = torch.device(device)
    layout = torch.contiguous_format
    if device.type == "cpu":
        # oneDNN's convolutions run about twice as fast on channels-last tensors at these batch
        # sizes (bench/RESULTS.md); a copy keeps the caller's model (maybe mid-training) as is.
        layout = torch.channels_last
        model = copy.deepcopy(model).to(memory_format=layout)
    was_training = model.training
    model.to(device).eval()
    chunks = []
    with inference_settings(device):
        for start in range(0, len(images), batch_size):
            chunk = normalize(images[start:start + batch_size].to(device, memory_format=layout))
            with autocast(precision, device):
                logits = tta_logits(lambda x: inference_logits(model, x), chunk, tta,
                                    tta_unsure_below)
            chunks.append(torch.softmax(logits.float(), dim=1).cpu())
    model.train(was_training)
    return torch.cat(chunks) if chunks else torch.empty(0, 0)


def confusion_rows(matrix: np.ndarray, classes: tuple[str, ...] | list[str]) -> pd.DataFrame:
    """A confusion matrix (counts[true, predicted]) as rows: true, predicted, images (for a
    heatmap)."""
    return pd.DataFrame([{"true": classes[i], "predicted": classes[j],
                          "images": int(matrix[i, j])}
                         for i in range(len(classes)) for j in range(len(classes))])


@dataclass(frozen=True)
class Evaluation:
    """Ground truth, prediction and confidence for every test image."""

    labels: np.ndarray  # (N,) int
    predicted: np.ndarray  # (N,) int
    confidence: np.ndarray  # (N,) float in 0..1
    classes: tuple[str, ...]

    @property
    def accuracy(self) -> float:
        """Percent correct over all images."""
        return float(100.0 * (self.labels == self.predicted).mean()) if len(self.labels) else 0.0

    def per_class_accuracy(self) -> pd.DataFrame:
        """One row per class: class, correct, total, accuracy (%)."""
        k = len(self.classes)
        total = np.bincount(self.labels, minlength=k)
        correct = np.bincount(self.labels[self.labels == self.predicted], minlength=k)
        with np.errstate(invalid="ignore", divide="ignore"):
            accuracy = np.where(total > 0, 100.0 * correct / np.maximum(total, 1), np.nan)
        return pd.DataFrame({"class": list(self.classes), "correct": correct,
                             "total": total, "accuracy": accuracy})

    def confusion_matrix(self) -> np.ndarray:
        """counts[true class, predicted class]."""
        k = len(self.classes)
        return np.bincount(self.labels * k + self.predicted, minlength=k * k).reshape(k, k)

    def confusion_table(self) -> pd.DataFrame:
        """The confusion matrix as rows: true, predicted, images (for a heatmap)."""
        return confusion_rows(self.confusion_matrix(), self.classes)

    def most_confused(self) -> tuple[int, int]:
        """(true class, predicted class) of the most frequent mistake."""
        mistakes = self.confusion_matrix()
        np.fill_diagonal(mistakes, -1)
        true, predicted = np.unravel_index(np.argmax(mistakes), mistakes.shape)
        return int(true), int(predicted)

    def most_confident_mistakes(self, count: int = 16) -> pd.DataFrame:
        """The wrong predictions the network was surest of: index, label, predicted, confidence."""
        wrong = np.flatnonzero(self.labels != self.predicted)
        wrong = wrong[np.argsort(-self.confidence[wrong], kind="stable")][:count]
        return self.rows(wrong)

    def images_where(self, true_class: int, predicted_class: int, count: int = 32) -> pd.DataFrame:
        """Test images of one confusion-matrix cell, most confident first."""
        cell = np.flatnonzero((self.labels == true_class) & (self.predicted == predicted_class))
        cell = cell[np.argsort(-self.confidence[cell], kind="stable")][:count]
        return self.rows(cell)

    def rows(self, indices: np.ndarray | list[int]) -> pd.DataFrame:
        """These test images: index, label, predicted, confidence, correct."""
        indices = np.asarray(indices, dtype=np.int64)
        return pd.DataFrame({
            "index": indices,
            "label": [self.classes[i] for i in self.labels[indices]],
            "predicted": [self.classes[i] for i in self.predicted[indices]],
            "confidence": self.confidence[indices],
            "correct": self.labels[indices] == self.predicted[indices],
        })

    def metrics(self) -> dict:
        """Plain-JSON summary kept with a run and in its checkpoint."""
        per_class = self.per_class_accuracy()
        return {
            "accuracy": self.accuracy,
            "per_class": {row["class"]: (None if np.isnan(row["accuracy"]) else
                                         float(row["accuracy"]))
                          for _, row in per_class.iterrows()},
            "confusion": self.confusion_matrix().tolist(),
            "test_images": int(len(self.labels)),
        }


def evaluate(model: nn.Module, data: ImageData, device: torch.device | str = "cpu",
             tta: str = "none", precision: str = "fp32",
             tta_unsure_below: float | None = None) -> Evaluation:
    """Run the model over the whole test split (with the training config's test-time
    augmentation and precision: a checkpoint's `prediction_options`)."""
    predicted, confidence = predict(model, data.test_images, device, tta=tta,
                                    precision=precision, tta_unsure_below=tta_unsure_below)
    return Evaluation(labels=data.test_labels.numpy(), predicted=predicted.numpy(),
                      confidence=confidence.numpy(), classes=data.classes)
