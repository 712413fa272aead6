"""The fork server's warm-up compiles what the stages will call, as they will call it."""

from __future__ import annotations

import subprocess
import sys

import pytest

#: run in a fresh interpreter: the test process may have compiled these kernels already
PROBE = """
import pipeline.warm  # warms the kernels on import
from stages.matching.engine import run_batch
print(sorted("readonly" in str(sig[0]) for sig in run_batch.signatures))
"""


@pytest.mark.timeout(600)
def test_warm_up_compiles_matching_for_the_read_only_views_the_stage_hands_it():
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=580, check=True
    )
    assert done.stdout.strip() == "[False, True]"  # writable (the Engine's) and read-only
