"""One SGD step of the tutorial's Net with its backward pass written out, op by op.

At the tutorial's batch of 4 images a step does about 13 MFLOP of work, and autograd's
bookkeeping, the optimizer's Python and the max-pool kernel cost about as much as the
arithmetic (bench/RESULTS.md). This module computes what `loss.backward(); optimizer.step()`
computes for `Net` with `CrossEntropyLoss` and `SGD(lr, momentum)`, with fewer and cheaper ops:

- max-pool runs before ReLU (the two commute: max(relu(a), relu(b)) = relu(max(a, b)), and the
  gradient reaches the same element), on four times fewer values;
- max-pool runs on channels-last data, where PyTorch's kernel is vectorised across channels:
  the default kernel branches on every comparison and mispredicts on real data. conv1's
  output is pooled as one image whose channels are the batch's 6 x B planes; conv2's is
  computed straight into channels-last order (16 channels, one AVX-512 vector). Values and
  indices are the same as max_pool2d's, ties included (first maximum);
- each convolution's weight gradient is one matrix product over the whole batch, on the im2col
  copy that its forward pass made (PyTorch's own convolution builds it again, one image at a
  time); conv1's two products go through oneDNN where this PyTorch has it, which runs these
  6-row products faster than MKL does from 3 images up (bench/RESULTS.md, Session 4, "The
  step");
- the weights live in one flat tensor (the model's parameters are views into it), so the
  momentum update is two ops on all 62,006 weights at once.

The gradients match autograd's to float rounding (tests/test_written_out.py). Every op is a
public PyTorch op but one (oneDNN's product, see _onednn_linear). Training uses it where it was
measured faster: on a CPU, for batches of up to 32 images (training.speed.open_step); larger
batches are faster through autograd and oneDNN's convolutions, which
do not build im2col copies at all.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from cifar_core.training.models import Net

# ATen's operators by their public names (torch.ops.aten): the backward pieces that autograd
# itself calls, which torch.nn.functional has no function for.
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


# Below this many images conv1's products are faster through torch.mm (oneDNN's fixed cost per
# call outweighs its faster kernel; measured on 1-8 images, bench/RESULTS.md).
ONEDNN_MIN_IMAGES = 3


# The one private PyTorch op here. On a 2-core AMD EPYC it ran conv1's products faster than
# torch.mm, and the step with them; on a 2-core Intel Xeon the step is slower with it
# (bench/RESULTS.md, Session 4, "The step", and Session 6, "Private ops in the written-out
# step"). Kept: changing it changes every seed's weights (float rounding), and this reshaping
# of the code had to keep them bit for bit.
@functools.cache
def _onednn_linear():
    """oneDNN's matrix product as this PyTorch exposes it, linear(a, w) = a @ w.T, or None
    where it has none (a build without oneDNN, or an op that changed): checked once against
    torch.mm on a small product."""
    if not torch.backends.mkldnn.is_available():
        return None
    try:
        linear = torch.ops.mkldnn._linear_pointwise
        a = torch.arange(12.0).view(2, 6) / 7
        w = torch.arange(18.0).view(3, 6) / 5
        if torch.allclose(linear(a, w, None, "none", [], ""), a @ w.t()):
            return linear
    except (AttributeError, RuntimeError, TypeError):
        pass
    return None


def _matmul(a: torch.Tensor, b: torch.Tensor, images: int) -> torch.Tensor:
    """a @ b, through oneDNN for batches of ONEDNN_MIN_IMAGES images and more (where it is
    there), else torch.mm."""
    linear = _onednn_linear() if images >= ONEDNN_MIN_IMAGES else None
    return linear(a, b.t(), None, "none", [], "") if linear is not None else torch.mm(a, b)


def _patches(x: torch.Tensor, k: int) -> torch.Tensor:
    """im2col of x (B,C,H,W) for a kxk convolution: (C*k*k, B*OH*OW), columns in (b, y, x)
    order. One strided copy; the backward pass reuses it for the weight gradient."""
    b, c, h, w = x.shape
    oh, ow = h - k + 1, w - k + 1
    sb, sc, sh, sw = x.stride()
    return x.as_strided((c, k, k, b, oh, ow), (sc, sh, sw, sb, sh, sw)).reshape(c * k * k,
                                                                               b * oh * ow)


class NetStep:
    """Trains `model` (a Net, for pictures of any shape it was built for) in place:
    `step(inputs, labels)` does zero_grad, forward,
    cross-entropy loss, backward and an SGD-with-momentum step, and returns the mean loss
    (a 0-d tensor, left on the device). The model's parameters become views into one flat
    tensor: the model stays usable (forward, state_dict, torch.save) while it trains.
    """

    def __init__(self, model: Net, lr: float, momentum: float,
                 flat: torch.Tensor | None = None):
        """`flat`: where the weights are to live, a 1-d tensor of the model's dtype, device and
        parameter count (e.g. memory shared with another process); by default a new one."""
        self.lr, self.momentum = lr, momentum
        m = model
        self.params = [m.conv1.weight, m.conv1.bias, m.conv2.weight, m.conv2.bias,
                       m.fc1.weight, m.fc1.bias, m.fc2.weight, m.fc2.bias,
                       m.fc3.weight, m.fc3.bias]
        first = self.params[0]
        size = sum(p.numel() for p in self.params)
        self.flat = flat if flat is not None else torch.empty(size, dtype=first.dtype,
                                                              device=first.device)
        self.grad = torch.zeros_like(self.flat)
        self.momentum_buffer = torch.zeros_like(self.flat)
        # Each weight, and its gradient, is a view into the flat tensors: the backward pass
        # writes gradients in place (out=) and the update is two ops for all of them.
        offset = 0
        for p in self.params:
            view = self.flat[offset:offset + p.numel()]
            view.copy_(p.detach().reshape(-1))
            p.data = view.view_as(p)
            offset += p.numel()
        self.one_hot = torch.eye(m.fc3.out_features, dtype=first.dtype, device=first.device)
        # The weights in the shapes the matrix products take, made once (views: the update
        # shows through them).
        w1, _, w2, _, w3, _, w4, _, w5, _ = self.params
        self.matrices = (w1.view(len(w1), -1), w2.view(len(w2), -1).t(), w3.t(), w4.t(),
                         w5.t())
        self.grad_views = self.views_of(self.grad)

    def views_of(self, flat_grad: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor,
                                                         torch.Tensor]:
        """Views of a flat gradient (shaped like self.flat) as `gradients` writes into it: one
        per weight, and conv1's and conv2's as matrices."""
        views, offset = [], 0
        for p in self.params:
            views.append(flat_grad[offset:offset + p.numel()].view_as(p))
            offset += p.numel()
        g1w, _, g2w, *_ = views
        return views, g1w.view(len(g1w), -1), g2w.view(len(g2w), -1)

    def step(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss = self.gradients(x, labels, len(labels), self.grad_views)
        self.update(self.grad)
        return loss.div_(len(labels))

    @torch.no_grad()
    def gradients(self, x: torch.Tensor, labels: torch.Tensor, n_total: int,
                  grad_views: tuple) -> torch.Tensor:
        """Forward and backward for the images x of a minibatch of n_total images: writes
        d(mean loss over the minibatch)/d(weights) contributed by x into grad_views (from
        views_of), returns the sum of x's losses (0-d)."""
        w1, b1, w2, b2, w3, b3, w4, b4, w5, b5 = self.params
        (g1w, g1b, g2w, g2b, g3w, g3b, g4w, g4b, g5w, g5b), g1w_rows, g2w_rows = grad_views
        w1_rows, w2_cols, w3_t, w4_t, w5_t = self.matrices
        n = x.shape[0]
        x = x.contiguous()
        c1_channels, c2_channels, k = w1.shape[0], w2.shape[0], w1.shape[2]

        # Forward, keeping what the backward pass needs. conv1 is one matrix product over the
        # whole batch; its output is laid out channel-major, (C, B, H, W), as that product
        # gives it, and pooling puts it back in (B, C, H, W) order for conv2.
        cols = _patches(x, k)
        c1 = _matmul(w1_rows, cols, n).add_(b1.view(-1, 1))
        c1 = c1.view(1, c1_channels * n, x.shape[2] - k + 1, x.shape[3] - k + 1)
        p1, i1 = _pool_planes(c1[0])
        a1 = p1.view(c1_channels, n, *p1.shape[1:]).transpose(0, 1).contiguous()
        # conv2 as one product too, with rows (image, y, x) and a column per channel: a
        # channels-last batch, as its max-pool wants it.
        cols2 = _patches(a1, k)
        c2 = torch.addmm(b2, cols2.t(), w2_cols)
        c2 = c2.view(n, a1.shape[2] - k + 1, a1.shape[3] - k + 1, c2_channels).permute(0, 3, 1, 2)
        p2, i2 = F.max_pool2d(c2, 2, return_indices=True)
        a2 = p2.relu_().contiguous().view(n, -1)
        h1 = torch.relu(torch.addmm(b3, a2, w3_t))
        h2 = torch.relu(torch.addmm(b4, h1, w4_t))
        log_probs = torch.log_softmax(torch.addmm(b5, h2, w5_t), 1)
        loss = F.nll_loss(log_probs, labels, reduction="sum")

        # Backward: d(mean cross-entropy)/d(logits) = (softmax - one_hot) / n_total.
        d = log_probs.exp_().sub_(self.one_hot.index_select(0, labels)).div_(n_total)
        torch.mm(d.t(), h2, out=g5w)
        torch.sum(d, 0, out=g5b)
        d = _aten.threshold_backward(d.mm(w5), h2, 0)
        torch.mm(d.t(), h1, out=g4w)
        torch.sum(d, 0, out=g4b)
        d = _aten.threshold_backward(d.mm(w4), h1, 0)
        torch.mm(d.t(), a2, out=g3w)
        torch.sum(d, 0, out=g3b)
        d = _aten.threshold_backward(d.mm(w3), a2, 0)
        d = _unpool(d.view(i2.shape), c2, i2)  # channels-last, like c2
        rows = d.permute(0, 2, 3, 1).reshape(-1, c2_channels)  # a view: (image, y, x) rows
        torch.mm(rows.t(), cols2.t(), out=g2w_rows)
        torch.sum(rows, 0, out=g2b)
        d = _aten.convolution_backward(d, a1, w2, None, [1, 1], [0, 0], [1, 1], False, [0, 0],
                                       1, [True, False, False])[0]
        d = _aten.threshold_backward(d, a1, 0).transpose(0, 1).contiguous()
        d = _unpool(d.view(i1.shape), c1, i1).view(c1_channels, -1)
        g1w_rows.copy_(_matmul(d, cols.t(), n))
        torch.sum(d, 1, out=g1b)
        return loss

    @torch.no_grad()
    def update(self, grad: torch.Tensor, *more: torch.Tensor) -> None:
        """SGD with momentum on all weights at once (dampening 0, no Nesterov, no weight
        decay), as torch.optim.SGD: buf = momentum * buf + grad; w -= lr * buf. The gradient
        is grad, plus `more` where parts of the minibatch were computed apart."""
        torch.add(grad, self.momentum_buffer, alpha=self.momentum, out=self.momentum_buffer)
        for part in more:
            self.momentum_buffer.add_(part)
        self.flat.add_(self.momentum_buffer, alpha=-self.lr)
