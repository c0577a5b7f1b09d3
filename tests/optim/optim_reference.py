"""The optimizer update rules written out in NumPy, step by step, as references for the tests.

A problem is a quadratic bowl with a gradient g(θ) = c·θ + d per parameter, so
that gradients depend on where the parameters went and errors compound.
"""

import numpy as np

import minigrad_q as mq


def make_problem(shapes, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    starts = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
    curvatures = [rng.uniform(0.5, 2.0, shape).astype(dtype) for shape in shapes]
    offsets = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
    return starts, curvatures, offsets


def gradient(theta, curvature, offset):
    return curvature * theta + offset


def leaves(starts, device="cpu"):
    return [mq.tensor(start.copy(), device=device, requires_grad=True) for start in starts]


def set_gradients(params, curvatures, offsets):
    """p.grad = c·p + d, as a backward pass would leave it."""
    for param, curvature, offset in zip(params, curvatures, offsets):
        theta = param.detach().numpy()
        param.grad = mq.tensor(gradient(theta, curvature, offset), device=param.device)


def run(optimizer, params, curvatures, offsets, steps):
    for _ in range(steps):
        set_gradients(params, curvatures, offsets)
        optimizer.step()
    return [param.detach().numpy() for param in params]


def sgd_reference(starts, curvatures, offsets, steps, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    thetas = [start.copy() for start in starts]
    buffers = [None] * len(thetas)
    for _ in range(steps):
        for i, (theta, curvature, offset) in enumerate(zip(thetas, curvatures, offsets)):
            g = gradient(theta, curvature, offset)
            g = g + weight_decay * theta
            if momentum != 0:
                buffers[i] = g.copy() if buffers[i] is None else momentum * buffers[i] + (1 - dampening) * g
                g = g + momentum * buffers[i] if nesterov else buffers[i]
            thetas[i] = theta - lr * g
    return thetas, buffers


def adam_reference(starts, curvatures, offsets, steps, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
    beta1, beta2 = betas
    thetas = [start.copy() for start in starts]
    m = [np.zeros_like(t) for t in thetas]
    v = [np.zeros_like(t) for t in thetas]
    for t in range(1, steps + 1):
        for i, (curvature, offset) in enumerate(zip(curvatures, offsets)):
            theta = thetas[i]
            g = gradient(theta, curvature, offset)
            if decoupled:
                theta = theta * (1 - lr * weight_decay)
            else:
                g = g + weight_decay * theta
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v[i] = beta2 * v[i] + (1 - beta2) * g * g
            m_hat = m[i] / (1 - beta1**t)
            v_hat = v[i] / (1 - beta2**t)
            thetas[i] = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
    return thetas, m, v
