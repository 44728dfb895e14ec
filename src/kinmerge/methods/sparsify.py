"""Shared pieces of the task-vector methods: trim masks, drop masks, sign election, sums.

TIES = magnitude trim + elect + disjoint mean; DARE = Bernoulli drop + rescale; their
combinations are compositions of these functions.
"""
from __future__ import annotations

import torch

_F32_HIGH = 16  # radix-select on the upper 16 bits of a float32's bit pattern
BLOCK = 1 << 22  # positions per block of the model-wise sums in `combine`


TOPK_MODES = ("stable", "mergekit")


def topk_mask(x: torch.Tensor, density: float, topk: str = "stable") -> torch.Tensor:
    """Bool mask keeping k = int(density * numel) entries of largest |x| (TIES trim).

    A positive density keeps at least one entry, as mergekit does: on a small tensor (a
    norm vector) int(density * numel) can be 0 where the recipe asked for some.
    topk="stable": among equal magnitudes at the threshold the earliest survive (fast radix
    select); "mergekit": those torch's unstable descending argsort of the magnitudes puts
    first, which is how stock mergekit picks them, so its bytes are reproduced.
    """
    k = max(1, int(density * x.numel())) if density > 0 else 0
    if topk == "mergekit" and 0 < k < x.numel():
        order = torch.argsort(mergekit_sort_key(x), descending=True)
        mask = torch.zeros(x.numel(), dtype=torch.bool, device=x.device)
        mask[order[:k]] = True
        return mask.reshape(x.shape)
    return topk_count_mask(x, k)


def mergekit_sort_key(x: torch.Tensor) -> torch.Tensor:
    """The values stock mergekit sorts to rank magnitudes: |x| flattened, as float32 on the
    CPU and in x's own dtype on an accelerator (its CPU sort lacks half precisions)."""
    w = x.detach().abs().reshape(-1)
    return w.float() if w.device.type == "cpu" else w


def topk_count_mask(x: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask keeping exactly the k entries of largest |x|.

    The k-th largest magnitude is found by radix selection instead of a sort: the bit pattern
    of a non-negative float32 orders like the float, so a histogram of its upper 16 bits names
    the bucket holding the threshold, and only that bucket is searched. Among equal magnitudes
    at the threshold, the earliest in flat order survive.
    """
    n = x.numel()
    if k >= n:
        return torch.ones_like(x, dtype=torch.bool)
    if k <= 0:
        return torch.zeros_like(x, dtype=torch.bool)
    flat = x.detach().reshape(-1)
    if flat.dtype in (torch.bfloat16, torch.float16) and flat.device.type == "cpu":
        key = flat.view(torch.int16) & 0x7FFF  # |x| as its bit pattern, ordered like |x|
        v, above = _kth_largest_bits(key, k)
        mask = key > v
        need = k - above
    else:
        key = flat.abs()
        key = key.float() if key.dtype != torch.float64 else key
        v = _kth_largest(key, k)
        mask = key > v
        need = k - int(mask.sum())
    if need:
        ties = torch.nonzero(key == v).squeeze(1)
        mask[ties[:need]] = True
    return mask.reshape(x.shape)


def _kth_largest_bits(key: torch.Tensor, k: int) -> tuple[int, int]:
    """(k-th largest of 15-bit magnitude patterns, how many entries lie above it): one
    histogram, no sort, no search."""
    counts = torch.bincount(key, minlength=1 << 15)
    at_least = counts.flip(0).cumsum(0).flip(0)  # at_least[b] = entries with pattern >= b
    v = int(torch.nonzero(at_least >= k).max())
    return v, (int(at_least[v + 1]) if v + 1 < len(at_least) else 0)


def _kth_largest(mag: torch.Tensor, k: int) -> torch.Tensor:
    if mag.dtype != torch.float32 or mag.device.type != "cpu" or mag.numel() < 1 << 16:
        return torch.kthvalue(mag, mag.numel() - k + 1).values
    high = (mag.view(torch.int32) >> _F32_HIGH).to(torch.int16)  # (n,) ids ordered like mag
    counts = torch.bincount(high, minlength=1 << 15)
    above = counts.flip(0).cumsum(0).flip(0)  # above[b] = entries in buckets >= b
    bucket = int(torch.nonzero(above >= k).max())
    higher = int(above[bucket + 1]) if bucket + 1 < len(above) else 0
    inside = mag[high == bucket]
    return torch.kthvalue(inside, inside.numel() - (k - higher) + 1).values


def keep_only(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """x, in place, with every entry outside the bool mask `keep` set to 0 (a trim or drop).

    Done on the bit patterns: AND with all ones keeps a value, AND with zeros gives +0. On
    CPU this is ~10x faster than masked_fill_ or a multiply by the mask cast to bfloat16.
    """
    ints = {2: torch.int16, 4: torch.int32, 8: torch.int64}.get(x.element_size())
    if ints is None:
        return x.masked_fill_(~keep, 0)
    x.view(ints).bitwise_and_(keep.to(ints).neg_())  # True -> -1 (all ones), False -> 0
    return x


def bernoulli_mask(shape: torch.Size, density: float,
                   generator: "torch.Generator | Predrawn") -> torch.Tensor:
    """Bool mask keeping each entry with probability `density` (DARE drop).

    Drawn on the CPU from the per-tensor generator, so the mask does not depend on device;
    with a `Predrawn`, the mask drawn ahead from that generator is taken instead.
    """
    if isinstance(generator, Predrawn):
        return generator.take(shape, density)
    return torch.rand(shape, generator=generator, dtype=torch.float32) < density


class Predrawn:
    """The Bernoulli masks of one tensor, drawn ahead by the executor's read-ahead thread from
    the tensor's own generator, in the order the method will ask for them
    (`Method.draws`): `bernoulli_mask` takes them one by one, so the masks, and the merge's
    bytes, are those of drawing them in place. A request out of step, or a mask left over,
    is a bug, raised as one."""

    def __init__(self, shape: torch.Size, densities: list[float], generator: torch.Generator):
        self.shape = torch.Size(shape)
        self._masks = [(d, bernoulli_mask(self.shape, d, generator)) for d in densities]

    @property
    def nbytes(self) -> int:
        return sum(m.numel() * m.element_size() for _, m in self._masks)

    def take(self, shape: torch.Size, density: float) -> torch.Tensor:
        if not self._masks or torch.Size(shape) != self.shape or self._masks[0][0] != density:
            raise RuntimeError(f"predrawn masks out of step: asked for {tuple(shape)} at "
                               f"density {density}, holding {[d for d, _ in self._masks]} "
                               f"of {tuple(self.shape)}")
        return self._masks.pop(0)[1]

    def done(self) -> None:
        if self._masks:
            raise RuntimeError(f"{len(self._masks)} predrawn masks were not used")


def rescale_l1(before: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """`kept`, in place, scaled so its L1 norm equals `before` (the L1 norm of the vector
    before thinning, `l1_on_cpu`): mergekit's DARE rescale. Left as it is when either norm
    is below 1e-7.

    Both sums are taken on the CPU wherever the tensors are: a GPU sums in another order,
    and a scale one ulp apart would change every float32 entry (measured on an H100)."""
    after = l1_on_cpu(kept)
    if before < 1e-7 or after < 1e-7:
        return kept
    return kept.mul_(before / after)


def l1_on_cpu(x: torch.Tensor) -> torch.Tensor:
    """sum |x| as the CPU sums it (the caller's thread count: one, under threads.arithmetic),
    a 0-dim tensor of x's dtype on the CPU, which multiplies a tensor on any device."""
    return x.abs().sum() if x.device.type == "cpu" else x.cpu().abs_().sum()


def elect_sign(weighted: torch.Tensor) -> torch.Tensor:
    """Bool mask (n_models, *shape): entries whose sign agrees with the elected sign.

    Elected sign: that of the weighted sum over models, + where the sum is 0 (TIES elect).
    A zero entry agrees with neither sign.
    """
    total = weighted.sum(dim=0)  # (*shape)
    ints = {2: torch.int16, 4: torch.int32, 8: torch.int64}.get(weighted.element_size())
    if ints is None or not weighted.is_floating_point():
        return torch.where(total >= 0, weighted > 0, weighted < 0)
    # on the bit patterns: flip each entry's sign bit where the elected sign is -, and the
    # entries that agree are exactly those read back as positive integers (a zero, +0 or -0,
    # reads as 0 or the most negative integer either way)
    sign_bit = torch.iinfo(ints).min
    flip = (total < 0).to(ints).mul_(sign_bit)
    return (weighted.view(ints) ^ flip) > 0


def combine(deltas: torch.Tensor, weights: list[float], base: torch.Tensor, *, elect: bool,
            normalize: bool, lambda_: float) -> torch.Tensor:
    """base + lambda * (sum_k w_k d_k [sign-agreeing only] / divisor): the task-vector merge.

    deltas: (n_models, *shape), consumed (overwritten). Arithmetic runs in deltas.dtype,
    weights included, in this order, because that is how mergekit computes and users expect
    its tensors; sums over models accumulate in float32 and round once, as torch's do.
    Every position depends only on its own column of deltas, so the work goes block by block
    of positions: the scratch memory is a few blocks, not a few copies of the tensor.
    """
    w = torch.tensor(weights, dtype=deltas.dtype, device=deltas.device)
    cols, flat_base = deltas.reshape(len(weights), -1), base.reshape(-1)  # (n_models, numel)
    out = torch.empty_like(flat_base)
    for i, j in _blocks(flat_base.numel()):
        out[i:j] = _combine_block(cols[:, i:j], w, flat_base[i:j], elect=elect,
                                  normalize=normalize, lambda_=lambda_)
    return out.reshape(base.shape)


def _blocks(n: int) -> list[tuple[int, int]]:
    """[i, j) ranges of BLOCK positions; the remainder joins the last block, so no block is
    narrow (torch reduces a narrow (n_models, width) slab in another order, and float32
    sums would no longer round as on the whole tensor)."""
    starts = list(range(0, n, BLOCK))
    if len(starts) > 1 and n - starts[-1] < BLOCK:
        starts.pop()
    return [(i, starts[k + 1] if k + 1 < len(starts) else n) for k, i in enumerate(starts)]


def _combine_block(deltas: torch.Tensor, w: torch.Tensor, base: torch.Tensor, *, elect: bool,
                   normalize: bool, lambda_: float) -> torch.Tensor:
    weighted = deltas.mul_(w.unsqueeze(1))  # (n_models, width): w_k d_k
    if elect:
        keep = elect_sign(weighted)
        mixed = keep_only(weighted, keep).sum(dim=0)
        if normalize:  # divide by the sum of the agreeing models' weights (0 -> 1)
            mixed = mixed / _weight_sums(keep, w)
    else:
        mixed = weighted.sum(dim=0)
        if normalize:
            divisor = w.unsqueeze(1).sum(dim=0)
            divisor[divisor.abs() < 1e-8] = 1
            mixed = mixed / divisor
    if lambda_ != 1:
        mixed = mixed * lambda_
    return (base + mixed).to(base.dtype)


def _weight_sums(keep: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """(*shape): sum_k w_k keep_k, a zero sum replaced by 1.

    For bfloat16/float16 weights and at most 8 models only 2**K sums are possible: each is
    computed once and looked up by the entry's bit code of `keep`, instead of multiplying and
    reducing (n_models, *shape). torch sums these in float32 and rounds once, where a few
    8- or 11-bit weights add up exactly in any order, so the table matches `(w * keep).sum(0)`.
    float32 sums depend on torch's reduction order: those take the direct route.
    """
    n = keep.shape[0]
    if n > 8 or w.dtype not in (torch.bfloat16, torch.float16):
        out = (w.reshape(-1, *([1] * (keep.dim() - 1))) * keep).sum(dim=0)
        return out.masked_fill_(out == 0, 1)
    bits = torch.arange(n, device=w.device).unsqueeze(1)
    subsets = (torch.arange(1 << n, device=w.device).unsqueeze(0) >> bits) & 1  # (n, 2**n)
    table = (w.unsqueeze(1) * subsets.to(w.dtype)).sum(dim=0)  # (2**n,)
    table[table == 0] = 1
    code = torch.zeros(keep.shape[1:], dtype=torch.uint8, device=keep.device)
    for k in range(n):
        code |= keep[k].to(torch.uint8) << k
    return table[code.int()]
