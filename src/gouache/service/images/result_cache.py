"""The result cache: a request with an explicit seed whose every pixel-deciding input matches an earlier
request of the same key is answered with that request's stored images, without compute.

The key is a hash of the resolved job (model name, folder and a fingerprint of its files, sampling plan,
size, seeds, prompts, output encoding, LoRA adapters with their scales and files), the device and dtype it
renders on, and, for edits, the uploads'
bytes and edit settings; the store finds
the earlier request by key and owner."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from gouache.engine.jobs import RenderedImage, RenderJob
from gouache.service.images.types import EditParams, GenerateParams
from gouache.store import Store
from gouache.store.views import RequestView

#: Where a job renders when nothing says otherwise: (device, dtype).
CPU_FLOAT32 = ("cpu", "float32")


def cache_key(
    enabled: bool,
    endpoint: str,
    params: GenerateParams,
    job: RenderJob,
    placement: tuple[str, str] = CPU_FLOAT32,
) -> str | None:
    """The request's key when it may be served from (and stored for) the cache, else None: the cache is on
    (`GOUACHE_RESULT_CACHE`), the request did not opt out (`"cache": false`) and it names its seed."""
    if not enabled or params.cache is False or params.seed is None:
        return None
    return result_cache_key(endpoint, params, job, placement)


def result_cache_key(
    endpoint: str, params: GenerateParams, job: RenderJob, placement: tuple[str, str] = CPU_FLOAT32
) -> str:
    """SHA-256 over the endpoint, the resolved job (model name and folder, plan, size, seeds, prompts,
    output encoding, LoRA adapters), where it renders (`placement`: device and dtype, which change the
    pixels) and, for edits, the uploads' bytes and edit settings. A job without adapters keeps the key it
    had before adapters existed."""
    digest = hashlib.sha256()
    device, dtype = placement
    inputs: dict[str, Any] = {
        "v": 1,
        "endpoint": endpoint,
        "device": device,
        "dtype": dtype,
        "model": job.model.name,
        "path": str(job.model.path),
        "weights": model_fingerprint(str(job.model.path)),
        "upscaler": job.model.upscaler,
        "prompt": job.prompt,
        "negative_prompt": job.negative_prompt,
        "plan": dataclasses.asdict(job.plan),
        "size": [job.width, job.height],
        "seeds": list(job.seeds),
        "format": [job.output_format, job.output_compression],
        "outputs": job.outputs.cache_fields(),
    }
    if job.loras:
        files = {lora.name: str(lora.path) for lora in job.model.loras}
        inputs["loras"] = [[c.name, c.scale, file_fingerprint(files.get(c.name, ""))] for c in job.loras]
    if isinstance(params, EditParams):
        inputs["edit"] = {
            "images": [hashlib.sha256(data).hexdigest() for data in params.images],
            "mask": None if params.mask is None else hashlib.sha256(params.mask).hexdigest(),
            "markup": None if params.markup is None else hashlib.sha256(params.markup).hexdigest(),
            "strength": job.edit.strength if job.edit else None,
            "input_fidelity": job.edit.input_fidelity if job.edit else None,
            "variation": params.variation,
        }
    digest.update(json.dumps(inputs, sort_keys=True, default=str).encode())
    return digest.hexdigest()


@functools.lru_cache(maxsize=64)
def model_fingerprint(path: str) -> str:
    """Names, sizes and modification times of a model folder's files, or of a single-file checkpoint (once
    per process and path): weights replaced in place give new cache keys after a restart, which is also when
    the server loads them."""
    root = Path(path)
    if root.is_file():
        return hashlib.sha256(f"{root.name}:{file_fingerprint(path)}".encode()).hexdigest()
    if not root.is_dir():
        return ""
    files = [f for f in root.rglob("*") if f.is_file()]
    entries = sorted(f"{f.relative_to(root)}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()


@functools.lru_cache(maxsize=64)
def file_fingerprint(path: str) -> str:
    """Size and modification time of one file (a LoRA adapter), once per process, as for model folders."""
    file = Path(path)
    return f"{file.stat().st_size}:{file.stat().st_mtime_ns}" if file.is_file() else ""


async def lookup(store: Store, key: str | None, key_id: str | None) -> RequestView | None:
    """The earlier succeeded request of this API key with this cache key, if any (None at once when the
    request is not cacheable)."""
    if key is None:
        return None
    return await asyncio.to_thread(store.find_cached, key, key_id)


def cached_images(store: Store, hit: RequestView, job: RenderJob) -> list[RenderedImage]:
    """A hit's stored images, as the engine would have rendered them for this job, with what the model
    understood of the prompt (kept in the hit's record, ``resolved.revised_prompts``)."""
    revised = list((hit.params.get("resolved") or {}).get("revised_prompts") or [])
    return [
        RenderedImage(
            store.read_image_bytes(image.id),
            image.format,
            image.width,
            image.height,
            image.seed if image.seed is not None else job.seeds[image.index],
            revised[image.index] if image.index < len(revised) else None,
        )
        for image in hit.images
    ]
