"""Loss layers with torch's options: CrossEntropyLoss's and NLLLoss's weight (a buffer, in state_dict
as torch's), ignore_index, and class-probability targets, each passed on to its functional op;
results against torch's layers."""

import numpy as np
import pytest
from helpers import host

import minigrad_q as mq
from minigrad_q import nn
from minigrad_q.nn import functional as F

rng = np.random.default_rng(0)


def test_cross_entropy_loss_passes_weight_ignore_index_and_smoothing_on():
    logits, target = mq.tensor(rng.standard_normal((6, 4))), mq.tensor([0, 3, -100, 1, 2, 2])
    weight = mq.tensor(rng.uniform(0.5, 2.0, 4))
    layer = nn.CrossEntropyLoss(weight, ignore_index=2, reduction="sum", label_smoothing=0.1)
    expected = F.cross_entropy(logits, target.clamp(0, 3), weight, ignore_index=2, reduction="sum", label_smoothing=0.1)
    assert layer(logits, target.clamp(0, 3)).item() == expected.item()
    assert np.isfinite(nn.CrossEntropyLoss()(logits, target).item())  # -100: ignored by default
    probabilities = F.softmax(mq.tensor(rng.standard_normal((6, 4))), 1)
    assert nn.CrossEntropyLoss(weight)(logits, probabilities).item() == F.cross_entropy(logits, probabilities, weight).item()


def test_nll_loss_passes_weight_and_ignore_index_on():
    log_probs = F.log_softmax(mq.tensor(rng.standard_normal((5, 3))), 1)
    target, weight = mq.tensor([0, 2, 1, 1, 0]), mq.tensor([1.0, 2.0, 0.5], dtype=mq.float64)
    per_sample = nn.NLLLoss(weight, ignore_index=1, reduction="none")(log_probs, target)
    np.testing.assert_array_equal(host(per_sample),
                                  host(F.nll_loss(log_probs, target, weight, ignore_index=1, reduction="none")))
    assert host(per_sample)[2] == 0.0


def test_class_weight_is_a_buffer_that_moves_with_the_module():
    layer = nn.CrossEntropyLoss(mq.ones(3))
    assert list(layer.state_dict()) == ["weight"] and list(nn.CrossEntropyLoss().state_dict()) == []
    assert layer.double().weight.dtype == mq.float64
    with pytest.raises(TypeError, match=r"NLLLoss: weight must be a Tensor of shape \(C,\) or None, got list"):
        nn.NLLLoss([1.0, 2.0])


@pytest.mark.parametrize(
    "build, probabilities",
    [(lambda m, w: m.CrossEntropyLoss(w, ignore_index=1), False),
     (lambda m, w: m.CrossEntropyLoss(w, reduction="none", label_smoothing=0.2), True),
     (lambda m, w: m.CrossEntropyLoss(label_smoothing=0.3), False),
     (lambda m, w: m.NLLLoss(w, ignore_index=0, reduction="sum"), False)],
)
def test_loss_layers_match_torch(build, probabilities):
    torch = pytest.importorskip("torch")
    x_data, weight = rng.standard_normal((7, 4)), rng.uniform(0.5, 2.0, 4)
    target = rng.random((7, 4)) if probabilities else rng.integers(0, 4, 7)
    ours, theirs = build(nn, mq.tensor(weight)), build(torch.nn, torch.tensor(weight))
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x, xt = mq.tensor(x_data, requires_grad=True), torch.tensor(x_data, requires_grad=True)
    loss, loss_t = ours(x, mq.tensor(target)), theirs(xt, torch.tensor(target))
    loss.sum().backward()
    loss_t.sum().backward()
    np.testing.assert_allclose(host(loss), loss_t.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-10, atol=1e-15)
