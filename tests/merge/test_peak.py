"""kinmerge.core.peak: what each job holds, that reading ahead never raises the peak, and the
estimate `kinmerge plan` prints."""
from __future__ import annotations

import math

import torch

from kinmerge.core.merge import open_models, plan_peak
from kinmerge.core.peak import RUNTIME_BYTES, expected_peak, input_bytes, job_bytes, read_ahead
from kinmerge.core.recipe import load_recipe
from kinmerge.core.plan import plan


def _ties(fam):
    return {"merge_method": "ties", "base_model": fam["base"], "dtype": "float32",
            "models": [{"model": m, "parameters": {"weight": 1, "density": 0.5}}
                       for m in fam["ft"]]}


def test_job_bytes_counts_inputs_deltas_masks_and_output(family):
    r = load_recipe(_ties(family))
    with open_models(r) as readers:
        p = plan(r, readers)
        job = max(p.jobs, key=lambda j: math.prod(j.shape))
        n = math.prod(job.shape)
        assert input_bytes(job, readers) == 4 * n * 4  # 3 fine-tunes + base, float32
        # inputs + 4 deltas-or-output copies + key and mask + the output
        assert job_bytes(p, job, readers) == 16 * n + 4 * n * 4 + 4 * n + 4 * n
        # computing in float64 adds the casts of the 4 inputs and doubles the scratch
        assert job_bytes(p, job, readers, torch.float64) == 16 * n + 32 * n + 32 * n + 4 * n \
            + 4 * n


def test_read_ahead_never_raises_the_peak(family):
    r = load_recipe(_ties(family))
    with open_models(r) as readers:
        p = plan(r, readers)
        held = [job_bytes(p, j, readers) for j in p.jobs]
        ahead = read_ahead(p, readers)
        assert len(ahead) == len(p.jobs) and not ahead[-1]
        assert any(ahead)  # the small jobs are read ahead
        for i, a in enumerate(ahead[:-1]):
            fits = held[i] + input_bytes(p.jobs[i + 1], readers) <= max(held)
            assert a == fits, p.jobs[i].name
        peak = expected_peak(p, readers)
    assert peak.bytes == RUNTIME_BYTES + max(held)
    assert peak.tensor == p.jobs[held.index(max(held))].name


def test_plan_peak_is_what_plan_prints(family):
    p, peak = plan_peak(_ties(family))
    assert str(peak) == (f"expected peak memory: up to ~{peak.bytes / 1e9:.2f} GB (at "
                         f"{peak.tensor}; 0.31 GB of it is Python and torch)")
