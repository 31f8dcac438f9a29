"""`gouache.deferred`: scipy and peft stay out until used, and what uses them works as with eager imports.

Each check runs in a fresh interpreter twice where it compares: once deferred (`gouache` imported first, as
every Gouache process does) and once eager (diffusers and transformers imported before `gouache`, so their
guards ran as written); both must answer the same."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: The modules whose guards `gouache.deferred` skips, imported before it is installed.
EAGER = (
    "import diffusers.schedulers.scheduling_dpmsolver_multistep, transformers.loss.loss_for_object_detection\n"
    "import diffusers.hooks.layerwise_casting, diffusers.loaders.lora_base\n"
    "import diffusers.pipelines.pipeline_loading_utils\n"
)


def _run(eager: bool) -> dict[str, dict[str, object]]:
    """The three checks below in one interpreter (each prints one JSON line), in order."""
    prefix = EAGER if eager else ""
    script = f"import json, sys\n{prefix}import gouache\n{BETA_SIGMAS}\n{MATCHING}\n{PEFT}"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.strip().splitlines() if line.startswith("{")]
    return dict(zip(("beta", "matching", "peft"), lines, strict=True))


@pytest.fixture(scope="module")
def deferred() -> dict[str, dict[str, object]]:
    return _run(eager=False)


@pytest.fixture(scope="module")
def eager() -> dict[str, dict[str, object]]:
    return _run(eager=True)


BETA_SIGMAS = """
from diffusers import DPMSolverMultistepScheduler
before = "scipy" in sys.modules
s = DPMSolverMultistepScheduler(use_beta_sigmas=True)
s.set_timesteps(8)
print(json.dumps({"before": before, "after": "scipy" in sys.modules, "sigmas": s.sigmas.tolist(),
                  "timesteps": s.timesteps.tolist()}))
"""


def test_beta_sigmas_import_scipy_on_use_and_match_the_eager_import(
    deferred: dict[str, dict[str, object]], eager: dict[str, dict[str, object]]
) -> None:
    ours, theirs = deferred["beta"], eager["beta"]
    assert ours["before"] is False and ours["after"] is True
    assert theirs["before"] is True
    assert ours["sigmas"] == theirs["sigmas"] and ours["timesteps"] == theirs["timesteps"]


MATCHING = """
import numpy as np
from transformers.loss import loss_for_object_detection as loss
from transformers.utils import is_scipy_available
before = "scipy" in sys.modules
rows, cols = loss.linear_sum_assignment(np.array([[4.0, 1.0, 3.0], [2.0, 0.0, 5.0], [3.0, 2.0, 2.0]]))
print(json.dumps({"before": before, "available": is_scipy_available(), "rows": rows.tolist(),
                  "cols": cols.tolist()}))
"""


def test_transformers_detection_losses_find_scipy_when_they_match(
    deferred: dict[str, dict[str, object]], eager: dict[str, dict[str, object]]
) -> None:
    ours, theirs = deferred["matching"], eager["matching"]
    assert ours["available"] is True
    assert (ours["rows"], ours["cols"]) == (theirs["rows"], theirs["cols"]) == ([0, 1, 2], [1, 0, 2])


PEFT = """
import diffusers.hooks.layerwise_casting as casting
import diffusers.loaders.lora_base as lora_base
from diffusers.pipelines import pipeline_loading_utils as loading
from diffusers.utils import unscale_lora_layers
import torch
unscale_lora_layers(torch.nn.Linear(2, 2), 0.5)
before = {"peft": "peft" in sys.modules, "flag": casting._SHOULD_DISABLE_PEFT_INPUT_AUTOCAST,
          "unwrap_checks_peft": loading.is_peft_available()}
import peft
from peft.tuners.tuners_utils import BaseTunerLayer
after = {"flag": casting._SHOULD_DISABLE_PEFT_INPUT_AUTOCAST, "unwrap_checks_peft": loading.is_peft_available(),
         "casting_layer": casting.BaseTunerLayer is BaseTunerLayer,
         "lora_base_layer": lora_base.BaseTunerLayer is BaseTunerLayer,
         "helper": casting.disable_input_dtype_casting.__module__}
print(json.dumps({"before": before, "after": after}))
"""


def test_peft_is_imported_by_the_first_lora_and_diffusers_then_sees_it_as_eagerly(
    deferred: dict[str, dict[str, object]], eager: dict[str, dict[str, object]]
) -> None:
    assert deferred["peft"]["before"] == {"peft": False, "flag": False, "unwrap_checks_peft": False}
    expected = {
        "flag": True,
        "unwrap_checks_peft": True,
        "casting_layer": True,
        "lora_base_layer": True,
        "helper": "peft.helpers",
    }
    assert deferred["peft"]["after"] == eager["peft"]["after"] == expected


def test_a_skipped_check_answers_false_only_on_the_importing_thread() -> None:
    import threading

    from gouache.deferred import _Absent

    absent = _Absent(lambda: True)
    elsewhere: list[bool] = []
    thread = threading.Thread(target=lambda: elsewhere.append(absent()))
    thread.start()
    thread.join()
    assert absent() is False and elsewhere == [True]
    assert _Absent(absent).real() is True  # nested windows unwrap to the real check
