"""Warm start: check a model's files cheaply before the server listens, then load, convert and render it once
on each engine worker that will run it, so that the first request pays none of that.

Why on the worker: a model loaded on one thread and denoised on another ran 2x slower (0.67 s of denoising on
the loading thread, 1.5 s on another; design note 33), and the OpenVINO conversion and each shape's
compilation happen on the first UNet call. The warm-up renders are real jobs through the runner (2 steps, at
each distinct working size and guidance of the model's plans, to a 1024x1024 PNG), so the load, the
conversion, the compilation, torch's kernels and the finish stage are all paid before ``/health`` says "ok".
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import json
import os
from dataclasses import replace
from pathlib import Path

from gouache.engine.catalog import CatalogError, ModelSpec, detect_family
from gouache.engine.jobs import RenderJob
from gouache.engine.outputs import GenerationParameters, OutputOptions, ProvenanceKeys
from gouache.engine.pipelines import ModelLoadError
from gouache.engine.single_file import is_single_file

#: Denoising steps of a warm-up render: enough to call the UNet (compiling its shape) and the scheduler.
WARM_STEPS = 2
#: Output edge of a warm-up render: OpenAI's default size, so finishing to it is warm too.
WARM_SIZE = 1024
#: A caption like a request's (a colour, a shape, a position), so that reading it, tinting and describing it
#: are warm too; every word is in gouache-mini's phrase table (an unknown word would wake its MiniLM
#: matcher and make its 44 MB of layer weights resident for nothing).
WARM_PROMPT = "a red circle to the left of a blue square"


def check_model(spec: ModelSpec) -> None:
    """Raise `ModelLoadError` naming the path when the model cannot be a pipeline, without reading weights:
    a checkpoint file must be readable; a folder must have a valid `model_index.json` of a known family and
    a non-empty subfolder for every component it lists."""
    path = Path(spec.path)
    if is_single_file(path):
        if not path.is_file() or not os.access(path, os.R_OK):
            raise ModelLoadError(f"The checkpoint {path} does not exist or cannot be read.")
        return
    try:
        detect_family(path)
        index = json.loads((path / "model_index.json").read_text())
    except (CatalogError, OSError, ValueError) as exc:
        raise ModelLoadError(str(exc)) from exc
    for name, value in index.items():
        if name.startswith("_") or not isinstance(value, list) or None in value:
            continue
        folder = path / name
        if not folder.is_dir() or not any(child.is_file() for child in folder.iterdir()):
            raise ModelLoadError(
                f"{path}: model_index.json lists the component {name!r} but {folder} is missing or empty."
            )


def warm_jobs(
    spec: ModelSpec, provenance: ProvenanceKeys | None = None, metadata: bool = False
) -> list[RenderJob]:
    """One short render per distinct (working resolution, guided or not) among the model's plans: each is
    one compiled shape on OpenVINO (the batch doubles with classifier-free guidance). Each finishes as the
    server's requests do: signed with `provenance` (C2PA: the library, the signer and the keys are loaded
    then) and with the parameters in the file when `metadata`, so that the first request pays neither."""
    jobs: list[RenderJob] = []
    seen: set[tuple[int, bool]] = set()
    for quality in spec.qualities:
        plan = spec.plan(quality)
        key = (plan.resolution or spec.resolution, plan.guidance > 1)
        if key in seen:
            continue
        seen.add(key)
        short = replace(plan, steps=min(plan.steps, WARM_STEPS))
        params = None
        if metadata:
            params = GenerationParameters(
                WARM_PROMPT, "", short.steps, short.scheduler, short.guidance, 0, WARM_SIZE, WARM_SIZE,
                spec.name,
            )  # fmt: skip
        outputs = OutputOptions(metadata=params, provenance=provenance)
        jobs.append(RenderJob(spec, WARM_PROMPT, short, WARM_SIZE, WARM_SIZE, seeds=(0,), outputs=outputs))
    return jobs


def release_memory() -> None:
    """Return what loading and the first renders freed to the system: a full collection, then
    :func:`trim_malloc`."""
    gc.collect()
    trim_malloc()


def trim_malloc() -> None:
    """glibc's `malloc_trim`: freed blocks otherwise stay in the arenas of the threads that used them (the
    worker, the finishers, 32 request threads) and count in the process's RSS. A few milliseconds."""
    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return
    trim(0)
