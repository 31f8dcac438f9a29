"""What serving gouache-mini loads into the server process, checked in a fresh interpreter (`sys.modules`):
the idle server's memory is mostly what it imported (design note 43), so what a request may never need must
not be imported on the way: other families' pipeline classes, the optimised backend before a model is
converted, C2PA before anything is signed, SVG tracing, the test pipelines, training code. Also: importing
diffusers' pipeline classes and loading the model print no library warnings or progress bars.

diffusers is imported: gouache-mini *is* a diffusers pipeline (design decision 4). peft and scipy, which
diffusers and transformers import behind availability checks, are not: `gouache.deferred` defers them to
their first use (a LoRA; beta sigmas, detection losses, a matted background), which these tests check too
(design note 50)."""

from __future__ import annotations

import json
import subprocess
import sys

#: Served on PyTorch with provenance off: what must then stay out of the process.
NEVER_LOADED = (
    "peft",  # a LoRA only (gouache.deferred)
    "scipy",  # beta sigmas, detection losses, matting a key colour (gouache.deferred, engine.outputs.alpha)
    "c2pa",  # imported on the first signing (engine.outputs.provenance)
    "openvino",  # imported when a model is converted (engine.backend)
    "onnxruntime",  # diffusers' OnnxRuntimeModel check gets a stand-in (engine.pipelines)
    "vtracer",  # SVG output only
    "torchvision",
    "diffusers.pipelines.auto_pipeline",  # edits only (engine.edits)
    "diffusers.pipelines.stable_diffusion_xl",
    "diffusers.pipelines.stable_diffusion_3",
    "diffusers.pipelines.flux",
    "diffusers.pipelines.controlnet",
    "gouache.engine.tiny",  # the tests' random pipelines
    "gouache.engine.tiny_lora",
    "gouache.mini.train",
    "gouache.mini.evaluation",
    "gouache.mini.scenes.rendering",
    "gouache.mini.scenes.captions",
)

SERVE_ONE_REQUEST = """
import json, sys, tempfile
from gouache.api.app import create_app
from gouache.engine.catalog import SamplingPlan
from gouache.engine.jobs import RenderJob
from gouache.engine.runner import Runner
from gouache.service.container import build_services
from gouache.settings import Settings

settings = Settings(data_dir=tempfile.mkdtemp(), backend="pytorch", provenance=False, preload=False)
services = build_services(settings)
create_app(settings, services)
spec = services.default_model
job = RenderJob(spec, "a red circle", SamplingPlan(steps=1, guidance=spec.plan("low").guidance), 64, 64, (1,))
result = services.queue.runner.render(job)
assert result.images and result.images[0].data[:4] == b"\\x89PNG", result
services.close()
print(json.dumps(sorted(sys.modules)))
"""


def test_serving_gouache_mini_imports_only_what_a_request_needs() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SERVE_ONE_REQUEST], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert {"gouache.service.container", "gouache.engine.runner", "gouache.mini.reading"} <= loaded
    present = sorted(m for m in loaded if m.startswith(NEVER_LOADED))
    assert present == []
    # Loading the model says nothing of its own: no library warnings, no progress bars (gouache.quiet).
    for noise in ("requires torchvision", "Expected types for", "Loading pipeline components", "Loading weights",
                  "FutureWarning", "torch_dtype"):  # fmt: skip
        assert noise not in done.stderr, done.stderr[-2000:]


#: Importing the app (and the CLI that serves it) must not import these: each is a large tree of modules
#: (design note 50) that only some requests use.
NOT_IMPORTED_BY_THE_APP = ("peft", "scipy", "openvino", "c2pa", "vtracer", "onnxruntime", "torchvision")


def test_importing_the_app_leaves_the_heavy_optional_libraries_out() -> None:
    code = (
        "import json, sys\nimport gouache.cli\nfrom gouache.api.app import create_app\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert {"gouache.api.app", "diffusers", "torch"} <= loaded
    assert sorted(m for m in loaded if m.startswith(NOT_IMPORTED_BY_THE_APP)) == []


def test_importing_diffusers_pipeline_classes_prints_no_torchvision_warnings() -> None:
    code = "import gouache\nfrom diffusers import StableDiffusionPipeline, AutoPipelineForInpainting\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "torchvision" not in done.stderr + done.stdout
