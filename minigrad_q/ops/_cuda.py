"""Every CUDA source of the ops package: the kernels of ops/_gpu.py, the GPU twins of the plain steps
of conv2d, max_pool2d, cross_entropy, relu, sigmoid and tanh.

Each source is one ``extern "C" __global__`` function over ``T`` (float or double, typedef'd by
backend.raw_kernel). Each thread takes items in a grid-stride loop (``MQ_FOR_EACH``), so any grid
covers them all, and each item is written by one thread only: no atomics, and sums are taken in the
order of the plain NumPy code. Sizes and indices are ``long long``, floats are ``T``
(backend.kernel_arguments). tests/ops/test_cuda_kernels.py compiles every source with NVRTC, and runs
each on the CPU (compiled as C++ with one thread) against the plain path. Importing this needs no CuPy.
"""

from __future__ import annotations

PRELUDE = """
#define MQ_FOR_EACH(i, items) \\
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (items); \\
       i += (long long)blockDim.x * gridDim.x)
#define MQ_NAN ((T)nan(""))
#define MQ_MINUS_INFINITY ((T)(-1.0 / 0.0))
"""

# conv2d. X, the column matrix, is (C·kh·kw, N·OH·OW) with row (c, i, j) and column (n, oh, ow):
# X[(c, i, j), (n, oh, ow)] = x[n, c, oh·sh − top + i·dh, ow·sw − left + j·dw], 0 outside x.
IM2COL = PRELUDE + """
extern "C" __global__ void minigrad_q_im2col(const T* x, T* columns, long long n, long long c, long long h,
    long long w, long long kh, long long kw, long long oh, long long ow, long long sh, long long sw, long long top,
    long long left, long long dh, long long dw) {
  const long long width = n * oh * ow;
  MQ_FOR_EACH(item, c * kh * kw * width) {
    const long long column = item % width, row = item / width;
    const long long out_x = column % ow, out_y = (column / ow) % oh, image = column / (ow * oh);
    const long long j = row % kw, i = (row / kw) % kh, channel = row / (kw * kh);
    const long long y = out_y * sh - top + i * dh, x_at = out_x * sw - left + j * dw;
    columns[item] = (y >= 0 && y < h && x_at >= 0 && x_at < w) ? x[((image * c + channel) * h + y) * w + x_at] : (T)0;
  }
}
"""

# dx[n, c, y, x] = Σ over (i, j), in that order, of dX[(c, i, j), (n, oh, ow)] for the outputs whose
# window read x at offset (i, j): oh·sh = y + top − i·dh and ow·sw = x + left − j·dw.
COL2IM = PRELUDE + """
extern "C" __global__ void minigrad_q_col2im(const T* d_columns, T* dx, long long n, long long c, long long h,
    long long w, long long kh, long long kw, long long oh, long long ow, long long sh, long long sw, long long top,
    long long left, long long dh, long long dw) {
  const long long width = n * oh * ow;
  MQ_FOR_EACH(item, n * c * h * w) {
    const long long x_at = item % w, y = (item / w) % h, channel = (item / (w * h)) % c, image = item / (w * h * c);
    T total = (T)0;
    for (long long i = 0; i < kh; ++i) {
      const long long row_at = y + top - i * dh;
      if (row_at < 0 || row_at % sh != 0 || row_at / sh >= oh) continue;
      for (long long j = 0; j < kw; ++j) {
        const long long column_at = x_at + left - j * dw;
        if (column_at < 0 || column_at % sw != 0 || column_at / sw >= ow) continue;
        total += d_columns[((channel * kh + i) * kw + j) * width + (image * oh + row_at / sh) * ow + column_at / sw];
      }
    }
    dx[item] = total;
  }
}
"""

# y[n, k, p] = Y[k, n·P + p] + b[k] (P = OH·OW): the GEMM's (K, N·P) product as NCHW, bias added.
TO_NCHW = PRELUDE + """
extern "C" __global__ void minigrad_q_to_nchw(const T* product, const T* bias, T* y, long long n, long long k,
    long long area, long long has_bias) {
  MQ_FOR_EACH(item, n * k * area) {
    const long long p = item % area, channel = (item / area) % k, image = item / (area * k);
    const T value = product[(channel * n + image) * area + p];
    y[item] = has_bias ? value + bias[channel] : value;
  }
}
"""

# dY[k, n·P + p] = dy[n, k, p]: the NCHW gradient as the (K, N·P) matrix of the GEMMs.
TO_MATRIX = PRELUDE + """
extern "C" __global__ void minigrad_q_to_matrix(const T* dy, T* matrix, long long n, long long k, long long area) {
  MQ_FOR_EACH(item, n * k * area) {
    const long long p = item % area, image = (item / area) % n, channel = item / (area * n);
    matrix[item] = dy[(image * k + channel) * area + p];
  }
}
"""

# max_pool2d over planes (N·C of them) of h×w, padding −inf: out = the first maximum of each window (a NaN
# wins and stays), index = its flat position y·w + x in the plane, or −1 where it lies in the padding.
MAX_POOL_FORWARD = PRELUDE + """
extern "C" __global__ void minigrad_q_max_pool_forward(const T* x, T* out, int* index, long long planes, long long h,
    long long w, long long kh, long long kw, long long oh, long long ow, long long sh, long long sw, long long ph,
    long long pw, long long keep_index) {
  MQ_FOR_EACH(item, planes * oh * ow) {
    const long long out_x = item % ow, out_y = (item / ow) % oh, plane = item / (ow * oh);
    const T* source = x + plane * h * w;
    T best = (T)0;
    long long at = -1;
    for (long long i = 0; i < kh; ++i) {
      const long long y = out_y * sh - ph + i;
      for (long long j = 0; j < kw; ++j) {
        const long long x_at = out_x * sw - pw + j;
        const bool inside = y >= 0 && y < h && x_at >= 0 && x_at < w;
        const T value = inside ? source[y * w + x_at] : MQ_MINUS_INFINITY;
        if ((i == 0 && j == 0) || value > best || (isnan(value) && !isnan(best))) {
          best = value;
          at = inside ? y * w + x_at : -1;
        }
      }
    }
    out[item] = best;
    if (keep_index) index[item] = (int)at;
  }
}
"""

# dx[plane, y, x] = Σ over the windows holding (y, x), offsets (i, j) in order, of grad_output where the
# window's index is y·w + x.
MAX_POOL_BACKWARD = PRELUDE + """
extern "C" __global__ void minigrad_q_max_pool_backward(const T* grad_output, const int* index, T* dx,
    long long planes, long long h, long long w, long long kh, long long kw, long long oh, long long ow, long long sh,
    long long sw, long long ph, long long pw) {
  MQ_FOR_EACH(item, planes * h * w) {
    const long long x_at = item % w, y = (item / w) % h, plane = item / (w * h);
    const long long first = plane * oh * ow, here = y * w + x_at;
    T total = (T)0;
    for (long long i = 0; i < kh; ++i) {
      const long long row_at = y + ph - i;
      if (row_at < 0 || row_at % sh != 0 || row_at / sh >= oh) continue;
      for (long long j = 0; j < kw; ++j) {
        const long long column_at = x_at + pw - j;
        if (column_at < 0 || column_at % sw != 0 || column_at / sw >= ow) continue;
        const long long window = first + (row_at / sh) * ow + column_at / sw;
        if (index[window] == here) total += grad_output[window];
      }
    }
    dx[item] = total;
  }
}
"""

# cross_entropy per row m of (M, C) scores, one thread a row: with s = x − max x and Z = Σ exp(s),
# loss = log Z − s[t], mixed for label smoothing ε as (1 − ε)·loss + ε·(log Z − mean s); probs = exp(s) / Z
# when kept. kept[m] = 0 and loss 0 where t = ignore_index, else 1. A target outside [0, C) otherwise gives a
# NaN loss and sets *bad.
CROSS_ENTROPY_FORWARD = PRELUDE + """
extern "C" __global__ void minigrad_q_cross_entropy_forward(const T* x, const long long* target, T* losses, T* probs,
    T* kept, int* bad, long long rows, long long classes, T smoothing, long long ignore_index, long long keep_probs) {
  MQ_FOR_EACH(m, rows) {
    const T* row = x + m * classes;
    T top = row[0];
    for (long long c = 1; c < classes; ++c)
      if (row[c] > top || isnan(row[c])) top = row[c];
    T total = (T)0, shifted_sum = (T)0;
    for (long long c = 0; c < classes; ++c) {
      const T shifted = row[c] - top;
      total += exp(shifted);
      shifted_sum += shifted;
    }
    const T log_total = log(total);
    const long long t = target[m];
    T loss;
    kept[m] = (T)(t != ignore_index);
    if (t == ignore_index) {
      loss = (T)0;
    } else if (t < 0 || t >= classes) {
      loss = MQ_NAN;
      *bad = 1;
    } else {
      loss = log_total - (row[t] - top);
      if (smoothing != (T)0) loss = loss * ((T)1 - smoothing) + smoothing * (log_total - shifted_sum / (T)classes);
    }
    losses[m] = loss;
    if (keep_probs)
      for (long long c = 0; c < classes; ++c) probs[m * classes + c] = exp(row[c] - top) / total;
  }
}
"""

# dx[m, c] = (probs[m, c] − q_c)·w_m with q = (1 − ε)·onehot(t_m) + ε/C and w_m = weights[m·weight_step]
# (weight_step 0: one weight for every row); 0 for a row whose target is ignore_index.
CROSS_ENTROPY_BACKWARD = PRELUDE + """
extern "C" __global__ void minigrad_q_cross_entropy_backward(const T* probs, const long long* target,
    const T* weights, T* dx, long long rows, long long classes, T smoothing, long long weight_step,
    long long ignore_index) {
  MQ_FOR_EACH(item, rows * classes) {
    const long long c = item % classes, m = item / classes;
    const T weight = target[m] == ignore_index ? (T)0 : weights[m * weight_step];
    T grad = probs[item] * weight;
    if (smoothing != (T)0) grad -= (smoothing / (T)classes) * weight;
    if (c == target[m]) grad -= ((T)1 - smoothing) * weight;
    dx[item] = grad;
  }
}
"""

# relu's backward: dx = grad_output · [y > 0] (y the saved output).
RELU_BACKWARD = PRELUDE + """
extern "C" __global__ void minigrad_q_relu_backward(const T* grad_output, const T* y, T* dx, long long items) {
  MQ_FOR_EACH(item, items) dx[item] = grad_output[item] * (T)(y[item] > (T)0);
}
"""

# sigmoid: y = e / (1 + e) with e = exp(min(x, 40)) (NaN stays NaN);  dx = (1 − y)·y·grad_output.
SIGMOID_FORWARD = PRELUDE + """
extern "C" __global__ void minigrad_q_sigmoid_forward(const T* x, T* y, long long items) {
  MQ_FOR_EACH(item, items) {
    const T e = exp(x[item] > (T)40 ? (T)40 : x[item]);
    y[item] = e / (e + (T)1);
  }
}
"""

SIGMOID_BACKWARD = PRELUDE + """
extern "C" __global__ void minigrad_q_sigmoid_backward(const T* grad_output, const T* y, T* dx, long long items) {
  MQ_FOR_EACH(item, items) dx[item] = ((T)1 - y[item]) * y[item] * grad_output[item];
}
"""

# tanh's backward: dx = (1 − y²)·grad_output.
TANH_BACKWARD = PRELUDE + """
extern "C" __global__ void minigrad_q_tanh_backward(const T* grad_output, const T* y, T* dx, long long items) {
  MQ_FOR_EACH(item, items) dx[item] = ((T)1 - y[item] * y[item]) * grad_output[item];
}
"""

KERNELS = {
    "minigrad_q_im2col": IM2COL,
    "minigrad_q_col2im": COL2IM,
    "minigrad_q_to_nchw": TO_NCHW,
    "minigrad_q_to_matrix": TO_MATRIX,
    "minigrad_q_max_pool_forward": MAX_POOL_FORWARD,
    "minigrad_q_max_pool_backward": MAX_POOL_BACKWARD,
    "minigrad_q_cross_entropy_forward": CROSS_ENTROPY_FORWARD,
    "minigrad_q_cross_entropy_backward": CROSS_ENTROPY_BACKWARD,
    "minigrad_q_relu_backward": RELU_BACKWARD,
    "minigrad_q_sigmoid_forward": SIGMOID_FORWARD,
    "minigrad_q_sigmoid_backward": SIGMOID_BACKWARD,
    "minigrad_q_tanh_backward": TANH_BACKWARD,
}  # name -> source: every kernel, for ops/_gpu.py and the NVRTC compile test
