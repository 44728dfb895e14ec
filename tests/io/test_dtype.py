"""kinmerge.io.dtype: the torch-free dtype values a plan is made of."""
import copy
import pickle

import pytest
import torch

from kinmerge.io.dtype import BY_CODE, BY_NAME, as_dtype
from kinmerge.io.safetensors_file import DTYPES, header_bytes


def test_one_value_per_dtype_equal_to_torchs():
    for name, d in BY_NAME.items():
        t = getattr(torch, name)
        assert as_dtype(name) is as_dtype(d.code) is as_dtype(t) is as_dtype(d) is d
        assert d == t and t == d and d.torch is t and str(d) == name
        assert (d.itemsize, d.is_floating_point) == (t.itemsize, t.is_floating_point)
        assert pickle.loads(pickle.dumps(d)) is d and copy.deepcopy(d) is d
    assert as_dtype("BF16") != torch.float16
    assert as_dtype("F32") != "float32"  # a name is no dtype: compare Dtype values
    assert set(DTYPES) == set(BY_CODE)  # every safetensors code kinmerge reads
    with pytest.raises(KeyError):
        as_dtype("F8_E4M3")


def test_header_bytes_take_either_kind_of_dtype():
    torch_entries = [("a", torch.bfloat16, (2, 3)), ("b", torch.int64, (1,))]
    ours = [(n, as_dtype(d), s) for n, d, s in torch_entries]
    assert header_bytes(torch_entries) == header_bytes(ours)
