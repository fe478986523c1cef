"""The heap pad of the processes that run work units (simulations/heap.py)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from escalade.simulations.heap import pad_heap

glibc = pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")

_FAULTS = """
import resource
import numpy as np
from escalade.design.boin import BoinConfig, BoinDesign
from escalade.design.crm import CrmConfig, CrmDesign
from escalade.simulations.runner import ScenarioSpec, WorkUnit, _unit_task, run_unit
designs = [BoinDesign(BoinConfig(target=0.25, n_doses=5, max_n=30, extrasafe=True)),  # cohort loop, not the kernel
           CrmDesign(CrmConfig(target=0.25, n_doses=5, skeleton=(0.06, 0.14, 0.25, 0.38, 0.5), max_n=30))]
spec = ScenarioSpec("s", (0.05, 0.1, 0.25, 0.4, 0.55), (0.2, 0.3, 0.4, 0.5, 0.6))
units = [WorkUnit(0, c, 2500 * c, 2500) for c in range(4)]
def faults(run):
    run(units[0])  # warm-up: imports, caches, the heap at its working size
    r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for u in units[1:]:
        run(u)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0
plain = faults(lambda u: run_unit(u, spec, designs, 1))
padded = faults(lambda u: _unit_task(u, spec, designs, 1, None))
print(plain, padded)
"""


@glibc
def test_pad_is_set_once_per_process() -> None:
    assert pad_heap() is True
    assert pad_heap() is True


@glibc
def test_padded_heap_stops_the_page_faults_of_large_chunks() -> None:
    out = subprocess.run([sys.executable, "-c", _FAULTS], capture_output=True, text=True, check=True, timeout=120)
    plain, padded = map(int, out.stdout.split())
    assert plain > 1000  # freeing and retaking the temporaries of 2,500-trial cohorts
    assert padded < plain / 10
