"""End to end with core ops only: softmax regression on the bundled digits, batches from the DataLoader,
updates from each optimizer; the test accuracy it reaches is a property of all three parts together."""

import numpy as np
import pytest

import minigrad_q as mq
from minigrad_q.data import DataLoader, load_dataset
from minigrad_q.optim import SGD, Adam, AdamW
from minigrad_q.optim.lr_scheduler import CosineAnnealingLR


def accuracy(weight, bias, dataset):
    logits = dataset.images.reshape(len(dataset), -1) @ weight.detach().numpy() + bias.detach().numpy()
    return float((logits.argmax(1) == dataset.labels).mean())


@pytest.mark.parametrize("make", [
    lambda p: SGD(p, lr=0.1, momentum=0.9, nesterov=True),
    lambda p: Adam(p, lr=0.01),
    lambda p: AdamW(p, lr=0.01, weight_decay=0.01),
], ids=["sgd-nesterov", "adam", "adamw"])
def test_softmax_regression_on_digits_reaches_93_percent(make):
    mq.manual_seed(0)
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    weight = mq.zeros(64, 10, requires_grad=True)
    bias = mq.zeros(10, requires_grad=True)
    optimizer = make([weight, bias])
    scheduler = CosineAnnealingLR(optimizer, T_max=8)
    loader = DataLoader(train, batch_size=32, shuffle=True, seed=0)
    losses = []
    for _ in range(8):
        total = 0.0
        for images, labels in loader:
            logits = images.reshape(len(labels), 64) @ weight + bias
            loss = -mq.log_softmax(logits, 1)[mq.arange(len(labels)), labels].mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(labels)
        scheduler.step()
        losses.append(total / len(train))
    assert losses[-1] < losses[0] / 3
    assert accuracy(weight, bias, test) >= 0.93
    assert np.isclose(optimizer.param_groups[0]["lr"], 0.0)
