"""The OpenVINO steps that run in a child process: converting a UNet to IR, and a trial compilation.

Both can take the process down (the TorchScript trace holds a second copy of the weights; OpenVINO's CPU
plugin has crashed with a segmentation fault on gouache-mini's UNet at static shapes), so the server runs
them as ``python -m gouache.engine.openvino_build convert|probe ...`` and only loads what succeeded. A
probe compiles with the server's own configuration and ``CACHE_DIR``, so the server's compilation afterwards
is a cache hit.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

#: UNet keyword arguments the IR takes as inputs after (sample, timestep, encoder_hidden_states).
ADDED_KEYS = ("text_embeds", "time_ids")
INPUT_NAMES = ("sample", "timestep", "encoder_hidden_states", *ADDED_KEYS)

CONVERT_TIMEOUT_S = 3600.0
PROBE_TIMEOUT_S = 1800.0


def run_child(args: list[str], timeout: float | None = None) -> str | None:
    """Run one step in a child process; None on success, else what went wrong (its last output lines)."""
    limit = timeout or (CONVERT_TIMEOUT_S if args[0] == "convert" else PROBE_TIMEOUT_S)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "gouache.engine.openvino_build", *args],
            capture_output=True,
            text=True,
            timeout=limit,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"{args[0]} took longer than {limit:.0f} s"
    if done.returncode == 0:
        return None
    tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
    return f"{args[0]} exited with {done.returncode}: {tail}"


def _example_inputs(shapes: list[list[int]]) -> list[Any]:
    import torch

    generator = torch.Generator().manual_seed(0)
    tensors = [torch.randn(*shape, generator=generator) for shape in shapes]
    tensors[1] = torch.full(shapes[1], 500.0)  # timesteps
    return tensors


def convert(unet_dir: str, ir_path: str, shapes_json: str, class_path: str = "") -> None:
    """Trace the UNet saved in ``unet_dir`` and write its IR (float32 weights, dynamic shapes) to ir_path.
    ``class_path`` ("module:Class") names a ``UNet2DConditionModel`` subclass to load it with; the traced
    function is always the base class's forward."""
    import importlib

    import openvino as ov
    import torch
    from diffusers import UNet2DConditionModel

    shapes = json.loads(shapes_json)
    cls: Any = UNet2DConditionModel
    if class_path:
        module, _, name = class_path.partition(":")
        cls = getattr(importlib.import_module(module), name)
        if not issubclass(cls, UNet2DConditionModel):
            raise SystemExit(f"{class_path} is not a UNet2DConditionModel")
    unet = cls.from_pretrained(unet_dir, dtype=torch.float32).eval()
    traced = Traced(unet, added=len(shapes) > 3).eval()
    with torch.no_grad():
        model = ov.convert_model(traced, example_input=tuple(_example_inputs(shapes)))
    for port, name in zip(model.inputs, INPUT_NAMES, strict=False):
        port.get_tensor().set_names({name})
    path = Path(ir_path)
    tmp = path.with_name(path.stem + ".partial.xml")
    ov.save_model(model, str(tmp), compress_to_fp16=False)
    tmp.with_suffix(".bin").replace(path.with_suffix(".bin"))
    tmp.replace(path)


def probe(ir_path: str, shapes_json: str, config_json: str, cache_dir: str, dynamic: str) -> None:
    """Compile the IR as the server will (static shapes unless ``dynamic`` is "1") and run it once."""
    import numpy as np
    import openvino as ov

    shapes = json.loads(shapes_json)
    core = ov.Core()
    core.set_property({"CACHE_DIR": str(Path(cache_dir) / "blobs")})
    model = core.read_model(ir_path)
    if dynamic != "1":
        model.reshape({port: ov.PartialShape(s) for port, s in zip(model.inputs, shapes, strict=True)})
    compiled = core.compile_model(model, "CPU", json.loads(config_json))
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal(shape).astype(np.float32) for shape in shapes]
    inputs[1] = np.full(shapes[1], 500.0, dtype=np.float32)
    out = compiled.create_infer_request().infer(inputs)[0]
    if not np.isfinite(out).all():
        raise SystemExit("the compiled UNet returned non-finite values")


def Traced(unet: Any, added: bool) -> Any:
    """The UNet as a function of plain tensors (what the converter traces)."""
    import torch

    class _Traced(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.unet = unet

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            sample, timestep, hidden = inputs[:3]
            extra = dict(zip(ADDED_KEYS, inputs[3:], strict=True)) if added else None
            # The base class's forward: on the server the instance's is the backend's stand-in, and a
            # subclass that widens its input (LayoutUNet) gets the widened input from the backend.
            from diffusers import UNet2DConditionModel

            out = UNet2DConditionModel.forward(
                self.unet, sample, timestep, encoder_hidden_states=hidden, added_cond_kwargs=extra,
                return_dict=False,
            )  # fmt: skip
            return out[0]

    return _Traced()


def main(argv: list[str]) -> None:
    steps: dict[str, Any] = {"convert": convert, "probe": probe}
    if not argv or argv[0] not in steps:
        raise SystemExit(f"usage: python -m gouache.engine.openvino_build {{{'|'.join(steps)}}} ARGS...")
    steps[argv[0]](*argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
