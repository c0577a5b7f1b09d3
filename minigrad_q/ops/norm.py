"""Batch normalisation over the channel dim 1 of (N, C), (N, C, L) or (N, C, H, W) input (torch.nn.functional.batch_norm).

Per channel c, over the N' = N·L values of that channel (L = the product of the dims after C):

- training: μ = mean x, σ² = mean (x - μ)² (biased), x̂ = (x - μ)/√(σ² + eps), y = γ x̂ + β;
  running stats (when given) are updated in place with torch's rule
  r_μ ← (1 - m) r_μ + m μ,  r_σ² ← (1 - m) r_σ² + m σ² N'/(N' - 1)  (the unbiased variance).
- eval: the running stats replace μ and σ², so y = x·s + t with s = γ/√(r_σ² + eps), t = β - r_μ s, an affine map.

Channel sums run as BLAS products (a matrix-vector product with ones, a batch of dot products):
NumPy's reductions over the non-adjacent axes (0, 2) are several times slower.
"""

from __future__ import annotations

from typing import Any

from ..core import Function, Tensor, collective
from ..specs import Draw, register_spec

__all__ = ["batch_norm"]


def _channels(x: Any) -> Any:
    """x as (N, C, L): the values of channel c are [:, c, :]."""
    return x.reshape(x.shape[0], x.shape[1], -1)


def _channel_sum(xp: Any, x3: Any) -> Any:
    """Σ over n and l of x3[n, c, l], as a (C,) vector."""
    n, c, length = x3.shape
    if length == 1:
        return xp.ones(n, dtype=x3.dtype) @ x3.reshape(n, c)
    ones = xp.ones(length, dtype=x3.dtype)
    return (x3.reshape(n * c, length) @ ones).reshape(n, c).sum(axis=0)


def _channel_dot(xp: Any, a3: Any, b3: Any) -> Any:
    """Σ over n and l of a3[n, c, l]·b3[n, c, l], as a (C,) vector."""
    n, c, length = a3.shape
    if length == 1:
        return xp.einsum("nc,nc->c", a3.reshape(n, c), b3.reshape(n, c))
    return xp.matmul(a3[:, :, None, :], b3[:, :, :, None]).reshape(n, c).sum(axis=0)


class BatchNorm(Function):
    """Training mode: y = γ x̂ + β, x̂ = (x - μ)/√(σ² + eps) with the batch's per-channel μ, σ².

    With g = dL/dy and sums over a channel's N' values:
    dx = (γ/√(σ² + eps)) (g - Σg/N' - x̂ Σ(g x̂)/N'),  dγ = Σ g x̂,  dβ = Σ g.
    Forward keeps x - μ and 1/√(σ² + eps) (x̂ is never stored: y comes straight from x - μ).
    The running stats are updated in place (no gradient); None skips the update.
    ``synchronized``: μ, σ² and the sums in dx are over every process of a data-parallel job
    (core.collective; equal shards), dγ and dβ stay this process's own, to be averaged with the rest."""

    def forward(self, x: Any, weight: Any, bias: Any, running_mean: Any, running_var: Any, momentum: float,
                eps: float, synchronized: bool = False) -> Any:
        xp = self.xp
        self.synchronized = synchronized
        x3 = _channels(x)
        count = x3.shape[0] * x3.shape[2]
        total = _channel_sum(xp, x3)
        if synchronized:
            count, total = collective.all_count(count), collective.all_sum(total)
        mean = total / count
        centered = x3 - mean[:, None]
        squares = _channel_dot(xp, centered, centered)
        var = (collective.all_sum(squares) if synchronized else squares) / count
        inv_std = 1 / xp.sqrt(var + eps)
        if running_mean is not None:
            running_mean *= 1 - momentum
            running_mean += momentum * mean
        if running_var is not None:
            running_var *= 1 - momentum
            running_var += (momentum * count / (count - 1)) * var
        scale = inv_std if weight is None else inv_std * weight
        y = centered * scale[:, None]
        if bias is not None:
            y += bias[:, None]
        if any(self.needs_input_grad[:3]):
            self.save_for_backward(centered, inv_std, scale)
        return y.reshape(x.shape)

    def backward(self, grad_output: Any) -> tuple[Any, Any, Any]:
        xp = self.xp
        centered, inv_std, scale = self.saved
        need_x, need_weight, need_bias = self.needs_input_grad[:3]
        g3 = grad_output.reshape(centered.shape)
        count = g3.shape[0] * g3.shape[2]
        sum_g = _channel_sum(xp, g3)
        sum_g_normalized = _channel_dot(xp, g3, centered)
        sum_g_normalized *= inv_std  # Σ g x̂ = Σ g (x - μ) / √(σ² + eps)
        grad_x = None
        if need_x:  # g - Σg/N' - x̂ Σ(g x̂)/N', with x̂ = (x - μ)·inv_std
            all_g, all_g_normalized = sum_g, sum_g_normalized
            if self.synchronized:
                count = collective.all_count(count)
                all_g, all_g_normalized = collective.all_sum(sum_g), collective.all_sum(sum_g_normalized)
            grad_x = xp.empty(grad_output.shape, dtype=grad_output.dtype)
            work = grad_x.reshape(g3.shape)  # a view: grad_x itself stays a fresh array the engine can keep
            xp.multiply(centered, (all_g_normalized * inv_std / count)[:, None], out=work)
            work += (all_g / count)[:, None]
            xp.subtract(g3, work, out=work)
            work *= scale[:, None]
        return grad_x, sum_g_normalized if need_weight else None, sum_g if need_bias else None


class BatchNormEval(Function):
    """Eval mode, with the running stats: y = (x - r_μ)/√(r_σ² + eps)·γ + β = x·s + t;
    dx = g s,  dγ = Σ g (x - r_μ)/√(r_σ² + eps),  dβ = Σ g  (no gradient for the running stats)."""

    def forward(self, x: Any, weight: Any, bias: Any, running_mean: Any, running_var: Any, eps: float) -> Any:
        xp = self.xp
        x3 = _channels(x)
        inv_std = 1 / xp.sqrt(running_var + eps)
        scale = inv_std if weight is None else inv_std * weight
        shift = -running_mean * scale
        if bias is not None:
            shift += bias
        y = x3 * scale[:, None]
        y += shift[:, None]
        need_x, need_weight = self.needs_input_grad[:2]
        # a copy of the running mean: a training step before this backward would update it in place
        self.save_for_backward(x3 if need_weight else None, scale, running_mean.copy(), inv_std)
        return y.reshape(x.shape)

    def backward(self, grad_output: Any) -> tuple[Any, Any, Any]:
        xp = self.xp
        x3, scale, running_mean, inv_std = self.saved
        need_x, need_weight, need_bias = self.needs_input_grad[:3]
        g3 = _channels(grad_output)
        sum_g = _channel_sum(xp, g3) if need_weight or need_bias else None
        grad_x = None
        if need_x:
            grad_x = xp.empty(grad_output.shape, dtype=grad_output.dtype)
            xp.multiply(g3, scale[:, None], out=grad_x.reshape(g3.shape))
        grad_weight = None
        if need_weight:
            grad_weight = _channel_dot(xp, g3, x3) - running_mean * sum_g
            grad_weight *= inv_std
        return grad_x, grad_weight, sum_g if need_bias else None


def _check_channel_vector(name: str, value: Any, input: Tensor) -> None:
    if value is None:
        return
    if not isinstance(value, Tensor):
        raise TypeError(f"batch_norm: {name} must be a Tensor or None, got {type(value).__name__}")
    channels = input.shape[1]
    if value.shape != (channels,):
        raise RuntimeError(
            f"batch_norm: {name} has shape {value.shape}, expected ({channels},) for input of shape {input.shape} "
            f"({channels} channels in dim 1)"
        )
    if value.dtype != input.dtype or value.device != input.device:
        raise RuntimeError(
            f"batch_norm: {name} is {value.dtype} on {value.device}, the input {input.dtype} on {input.device}; "
            "they must match"
        )


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None, weight: Tensor | None = None,
               bias: Tensor | None = None, training: bool = False, momentum: float = 0.1, eps: float = 1e-5,
               synchronized: bool = False) -> Tensor:
    """torch.nn.functional.batch_norm: normalise each channel (dim 1) of an (N, C), (N, C, L) or
    (N, C, H, W) input. training=True uses the batch's mean and biased variance and updates
    running_mean / running_var in place (when given) with momentum, the variance unbiased;
    training=False uses the running stats, which are then required. ``synchronized`` (training):
    the batch statistics of every process of a data-parallel job together (torch's SyncBatchNorm)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"batch_norm: expected a Tensor input, got {type(input).__name__}")
    if input.ndim < 2:
        raise RuntimeError(f"batch_norm: expected an input of at least 2 dims (N, C, ...), got shape {input.shape}")
    if input.dtype.kind != "f":
        raise RuntimeError(f"batch_norm: expected a floating point input, got dtype {input.dtype}")
    for name, value in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        _check_channel_vector(name, value, input)
    if training:
        if input.numel() // max(input.shape[1], 1) <= 1:
            raise ValueError(
                f"batch_norm: expected more than 1 value per channel when training, got input of shape {input.shape}"
            )
        return BatchNorm.apply(input, weight, bias, _data(running_mean), _data(running_var), float(momentum), float(eps),
                               bool(synchronized))
    if running_mean is None or running_var is None:
        raise RuntimeError("batch_norm: running_mean and running_var must be given in eval mode (training=False)")
    return BatchNormEval.apply(input, weight, bias, running_mean.data, running_var.data, float(eps))


def _data(value: Tensor | None) -> Any:
    """The array of a running stat, passed to the Function as a plain value: it gets no gradient."""
    return None if value is None else value.data


# ---------------------------------------------------------------- gradient specs
def _sample_batch_norm(d: Draw, training: bool) -> tuple[Any, ...]:
    channels = d.integers(1, 3)
    shape = d.choice([(d.integers(2, 4), channels), (d.integers(1, 2), channels, d.integers(2, 3)),
                      (d.integers(1, 2), channels, d.integers(1, 2), d.integers(2, 3))])
    x = d.tensor(shape, distinct=True)  # values apart: a near-constant channel has a tiny variance
    weight = d.choice([None, d.tensor((channels,))])
    bias = d.choice([None, d.tensor((channels,))])
    if training:
        return x, weight, bias
    running_mean = d.tensor((channels,), requires_grad=False)
    running_var = d.tensor((channels,), low=0.2, high=2.0, requires_grad=False)
    return x, running_mean, running_var, weight, bias


register_spec(BatchNorm, sample=lambda d: _sample_batch_norm(d, training=True),
              call=lambda x, weight, bias: batch_norm(x, None, None, weight, bias, training=True),
              note="no running stats: their in-place update would change between gradcheck's evaluations")
register_spec(BatchNormEval, sample=lambda d: _sample_batch_norm(d, training=False),
              call=lambda x, mean, var, weight, bias: batch_norm(x, mean, var, weight, bias, training=False))
