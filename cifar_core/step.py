"""One SGD step of the tutorial's Net with its backward pass written out, op by op.

At the tutorial's batch of 4 images a step does about 13 MFLOP of work, and autograd's
bookkeeping, the optimizer's Python and the max-pool kernel cost about as much as the
arithmetic (bench/RESULTS.md). This module computes what `loss.backward(); optimizer.step()`
computes for `Net` with `CrossEntropyLoss` and `SGD(lr, momentum)`, with fewer and cheaper ops:

- max-pool runs before ReLU (the two commute: max(relu(a), relu(b)) = relu(max(a, b)), and the
  gradient reaches the same element), on four times fewer values;
- max-pool sees the batch as the channels of one channels-last image, so PyTorch's vectorised
  channels-last kernel does it: the default kernel branches on every comparison and
  mispredicts on real data. Values and indices are the same, ties included (first maximum);
- conv1 is one matrix product over the whole batch, on an im2col copy of the input that the
  backward pass reuses for the weight gradient (PyTorch's own convolution builds it twice, one
  image at a time);
- the weights live in one flat tensor (the model's parameters are views into it), so the
  momentum update is two ops on all 62,006 weights at once.

The gradients match autograd's to float rounding (tests/test_step.py). Every op is a plain
PyTorch op. Training uses it where it was measured faster: on a CPU, for batches of up to 16
images (train.make_step); larger batches are faster through autograd and oneDNN, whose
convolutions do not build the im2col copy at all.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn, optim

from cifar_core.model import Net

_aten = torch.ops.aten


def _pool_planes(planes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """2x2 max-pool, then ReLU, of P planes (P,H,W): (pooled (P,H/2,W/2), a channels-last
    strided view; indices (1,P,H/2,W/2) contiguous, as max_pool2d gives them)."""
    p, h, w = planes.shape
    # P planes as the channels of one channels-last image: the vectorised kernel.
    image = planes.view(1, p, h, w).contiguous(memory_format=torch.channels_last)
    pooled, indices = F.max_pool2d(image, 2, return_indices=True)
    return torch.relu_(pooled)[0], indices.contiguous()


def _unpool(grad: torch.Tensor, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Gradient of the 2x2 max-pool of x (1,P,H,W): each value back to where it came from."""
    return _aten.max_pool2d_with_indices_backward(grad, x, [2, 2], [2, 2], [0, 0], [1, 1],
                                                   False, indices)


def _patches(x: torch.Tensor, k: int) -> torch.Tensor:
    """im2col of x (B,C,H,W) for a kxk convolution: (C*k*k, B*OH*OW), columns in (b, y, x)
    order. One strided copy; the backward pass reuses it for the weight gradient."""
    b, c, h, w = x.shape
    oh, ow = h - k + 1, w - k + 1
    sb, sc, sh, sw = x.stride()
    return x.as_strided((c, k, k, b, oh, ow), (sc, sh, sw, sb, sh, sw)).reshape(c * k * k,
                                                                               b * oh * ow)


class NetStep:
    """Trains `model` (a Net) in place: `step(inputs, labels)` does zero_grad, forward,
    cross-entropy loss, backward and an SGD-with-momentum step, and returns the mean loss
    (a 0-d tensor, left on the device). The model's parameters become views into one flat
    tensor: the model stays usable (forward, state_dict, torch.save) while it trains.
    """

    def __init__(self, model: Net, lr: float, momentum: float):
        self.lr, self.momentum = lr, momentum
        m = model
        self.params = [m.conv1.weight, m.conv1.bias, m.conv2.weight, m.conv2.bias,
                       m.fc1.weight, m.fc1.bias, m.fc2.weight, m.fc2.bias,
                       m.fc3.weight, m.fc3.bias]
        first = self.params[0]
        self.flat = torch.empty(sum(p.numel() for p in self.params), dtype=first.dtype,
                                device=first.device)
        self.grad = torch.zeros_like(self.flat)
        self.momentum_buffer = torch.zeros_like(self.flat)
        # Each weight, and its gradient, is a view into the flat tensors: the backward pass
        # writes gradients in place (out=) and the update is two ops for all of them.
        self.grads = []
        offset = 0
        for p in self.params:
            view = self.flat[offset:offset + p.numel()]
            view.copy_(p.detach().reshape(-1))
            p.data = view.view_as(p)
            self.grads.append(self.grad[offset:offset + p.numel()].view_as(p))
            offset += p.numel()
        self.one_hot = torch.eye(m.fc3.out_features, dtype=first.dtype, device=first.device)

    @torch.no_grad()
    def step(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        w1, b1, w2, b2, w3, b3, w4, b4, w5, b5 = self.params
        g1w, g1b, g2w, g2b, g3w, g3b, g4w, g4b, g5w, g5b = self.grads
        n = x.shape[0]
        x = x.contiguous()
        c1_channels = w1.shape[0]

        # Forward, keeping what the backward pass needs. conv1 is one matrix product over the
        # whole batch; its output is laid out channel-major, (C, B, H, W), as that product
        # gives it, and pooling puts it back in (B, C, H, W) order for conv2.
        k = w1.shape[2]
        cols = _patches(x, k)
        c1 = torch.addmm(b1.view(-1, 1), w1.view(c1_channels, -1), cols)
        c1 = c1.view(1, c1_channels * n, x.shape[2] - k + 1, x.shape[3] - k + 1)
        p1, i1 = _pool_planes(c1[0])
        a1 = p1.view(c1_channels, n, *p1.shape[1:]).transpose(0, 1).contiguous()
        c2 = F.conv2d(a1, w2, b2)
        c2 = c2.view(1, -1, *c2.shape[2:])
        p2, i2 = _pool_planes(c2[0])
        a2 = p2.contiguous().view(n, -1)
        h1 = torch.relu(torch.addmm(b3, a2, w3.t()))
        h2 = torch.relu(torch.addmm(b4, h1, w4.t()))
        log_probs = torch.log_softmax(torch.addmm(b5, h2, w5.t()), 1)
        loss = F.nll_loss(log_probs, labels)

        # Backward: d(mean cross-entropy)/d(logits) = (softmax - one_hot) / n.
        d = log_probs.exp_().sub_(self.one_hot[labels]).div_(n)
        torch.mm(d.t(), h2, out=g5w)
        torch.sum(d, 0, out=g5b)
        d = _aten.threshold_backward(d.mm(w5), h2, 0)
        torch.mm(d.t(), h1, out=g4w)
        torch.sum(d, 0, out=g4b)
        d = _aten.threshold_backward(d.mm(w4), h1, 0)
        torch.mm(d.t(), a2, out=g3w)
        torch.sum(d, 0, out=g3b)
        d = _aten.threshold_backward(d.mm(w3), a2, 0)
        d = _unpool(d.view(i2.shape), c2, i2).view(n, -1, *c2.shape[2:])
        d, conv2_w, conv2_b = _aten.convolution_backward(
            d, a1, w2, [w2.shape[0]], [1, 1], [0, 0], [1, 1], False, [0, 0], 1,
            [True, True, True])
        g2w.copy_(conv2_w)
        g2b.copy_(conv2_b)
        d = _aten.threshold_backward(d, a1, 0).transpose(0, 1).contiguous()
        d = _unpool(d.view(i1.shape), c1, i1).view(c1_channels, -1)
        torch.mm(d, cols.t(), out=g1w.view(c1_channels, -1))
        torch.sum(d, 1, out=g1b)

        # SGD with momentum on all weights at once (dampening 0, no Nesterov, no weight
        # decay), as torch.optim.SGD: buf = momentum * buf + grad; w -= lr * buf.
        torch.add(self.grad, self.momentum_buffer, alpha=self.momentum, out=self.momentum_buffer)
        self.flat.add_(self.momentum_buffer, alpha=-self.lr)
        return loss


class AutogradStep:
    """The tutorial's step for any model: zero_grad, forward, loss, backward, optimizer step.
    Same interface as NetStep, which does the same for Net faster."""

    def __init__(self, model: nn.Module, lr: float, momentum: float):
        self.model = model
        self.criterion = nn.CrossEntropyLoss()
        device = next(model.parameters()).device
        # The fused SGD step is one kernel instead of a few per weight tensor (CPU and CUDA).
        fused = {"fused": True} if device.type in ("cpu", "cuda") else {}
        self.optimizer = optim.SGD(model.parameters(), lr=lr, momentum=momentum, **fused)

    def step(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self.optimizer.zero_grad()
        loss = self.criterion(self.model(x), labels)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

