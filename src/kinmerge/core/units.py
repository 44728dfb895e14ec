"""Which inputs make each output tensor: the recipe's two forms as `Unit`s, before any
parameter is resolved or any tensor checked (kinmerge.core.plan turns them into jobs).

The models form gives one output per tensor of the reference model, from the same tensor of
every input; the slices form lays each slice's layer ranges one after another, renumbered,
with a layer's relative position `u` for gradients. Only names (and layer counts) are read.
"""
from __future__ import annotations

from dataclasses import dataclass

from kinmerge.core.layers import LayerScheme, detect, is_embedding
from kinmerge.core.schema import Recipe
from kinmerge.core.validate import inputs_of
from kinmerge.io.reader import ModelReader
from kinmerge.methods import Method


@dataclass
class Unit:
    """An output tensor before its parameters are resolved."""

    name: str
    sources: list[tuple[str, str, list[dict]]]  # model, tensor, parameter lookup chain
    base: tuple[str, str] | None
    global_chain: list[dict]
    u: float
    layer: int | None
    ref: tuple[str, str]  # the tensor whose shape and dtype the output takes


def model_units(r: Recipe, method: Method, readers: dict[str, ModelReader],
                s: LayerScheme) -> list[Unit]:
    """The models form: one output per tensor of the reference model, from the same tensor
    of every input."""
    entries = {e.model: e.parameters for e in r.models}
    inputs = inputs_of(r, method)
    reference = r.model_refs()[0]
    units = []
    for name in readers[reference].names():
        layer = s.index(name)
        u = _position(layer, s.num_layers) if layer is not None else 0.0
        sources = [(x, name, [entries.get(x, {}), r.parameters]) for x in inputs]
        base = (r.base_model, name) if method.takes_base and r.base_model else None
        units.append(Unit(name, sources, base, [r.parameters], u, layer, (reference, name)))
    return units


def slice_units(r: Recipe, method: Method, readers: dict[str, ModelReader], s: LayerScheme,
                problems: list[str]) -> list[Unit]:
    """The slices form: each slice's layer ranges, renumbered one after another in the
    output; tensors outside the layers (embeddings, norms, head) from the first or last
    slice. A range outside its model is added to `problems` (and no unit is made)."""
    if not _check_ranges(r, readers, problems):
        return []
    units, offset = [], 0
    for sl in r.slices:
        base = sl.base_model or r.base_model  # a slice may name its own base, as in mergekit
        ref_src = next((x for x in sl.sources if x.model == base), sl.sources[0])
        a_ref, b_ref = ref_src.layer_range
        by_layer = _names_by_layer(readers[ref_src.model], s)
        for j in range(b_ref - a_ref):
            u = _position(j, b_ref - a_ref)
            for name in by_layer.get(a_ref + j, []):
                suffix = s.suffix(name)
                at = [f"{s.prefix}{x.layer_range[0] + j}.{suffix}" for x in sl.sources]
                units.append(_slice_unit(r, method, sl, f"{s.prefix}{offset + j}.{suffix}", at,
                                         u, offset + j, (ref_src.model, name)))
        offset += b_ref - a_ref
    reference = r.model_refs()[0]
    for name in readers[reference].names():
        if s.index(name) is None:
            sl = r.slices[0] if is_embedding(name) else r.slices[-1]
            at = [name] * len(sl.sources)
            units.append(_slice_unit(r, method, sl, name, at, 0.0, None,
                                     (sl.sources[0].model, name)))
    return units


def _position(j: int, n: int) -> float:
    """Relative position u of layer j among n for gradients; a lone layer sits at u = 1
    (mergekit's choice: a one-layer slice takes a gradient's last anchor)."""
    return j / (n - 1) if n > 1 else 1.0


def _slice_unit(r: Recipe, method: Method, sl, out_name: str, at: list[str], u: float,
                layer: int | None, ref: tuple[str, str]) -> Unit:
    """`at[i]` is the input tensor name that slice source i contributes."""
    takes_base = method.takes_base
    slice_base = sl.base_model or r.base_model
    sources, base = [], None
    for src, name in zip(sl.sources, at):
        if takes_base and src.model == slice_base and base is None:
            base = (src.model, name)
        else:
            sources.append((src.model, name, [src.parameters, sl.parameters, r.parameters]))
    if takes_base and base is not None:
        ref = base
    return Unit(out_name, sources, base, [sl.parameters, r.parameters], u, layer, ref)


def _check_ranges(recipe: Recipe, readers: dict[str, ModelReader], problems: list[str]) -> bool:
    ok = True
    for i, sl in enumerate(recipe.slices):
        for j, src in enumerate(sl.sources):
            r = readers[src.model]
            n = detect(r.names(), r.config).num_layers
            a, b = src.layer_range
            if b > n:
                ok = False
                problems.append(
                    f"slices[{i}].sources[{j}].layer_range {[a, b]} is outside model "
                    f"{src.model}, which has {n} layers (valid ranges lie within [0, {n}])")
    return ok


def _names_by_layer(r: ModelReader, s: LayerScheme) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for n in r.names():
        i = s.index(n)
        if i is not None:
            out.setdefault(i, []).append(n)
    return out


def out_layers(r: Recipe) -> int | None:
    """The output's layer count of a slices recipe (None for the models form)."""
    if r.slices is None:
        return None
    return sum(s.sources[0].layer_range[1] - s.sources[0].layer_range[0] for s in r.slices)
