"""Optional dependencies that diffusers and transformers import at module level, deferred to their first use.

An idle server's memory is mostly the code it imported (design notes 43 and 50). Two of the largest pieces
come in through guards like ``if is_scipy_available(): import scipy.stats`` in modules that every
gouache-mini request imports, for features no such request uses:

- **scipy** (~56 MB, 490 modules): diffusers' schedulers import ``scipy.stats`` for beta sigmas
  (``use_beta_sigmas``), transformers' detection losses import ``scipy.optimize.linear_sum_assignment``
  (imported by ``transformers.modeling_utils``).
- **peft** (~12 MB, 230 modules): ``diffusers.hooks.layerwise_casting`` and ``diffusers.loaders.lora_base``
  import peft names for LoRA layers, and every prompt encoding calls ``unscale_lora_layers``, which imports
  peft before looking at its arguments.
- **boto3** (~7 MB, 150 modules): accelerate's SageMaker configuration, imported with accelerate.

While such a module runs its body, the availability check it imports answers False, so the guarded import
is skipped; right after, the module gets the real check back and, for each name the guard would have bound,
a stand-in that imports the dependency when it is first used. So a scheduler with ``use_beta_sigmas`` still
works (it imports scipy then), and the availability checks answer as before. For peft the stand-ins are the
real names, bound when peft itself is imported: before that, no module can hold a peft layer, so the
skipped branch had nothing to do.

:func:`install` runs when :mod:`gouache` is imported, before anything imports diffusers or transformers;
modules imported before it keep their eager imports (nothing breaks, nothing is saved). A version of either
library that moves these names just imports eagerly again: every step here checks what it finds.
"""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import importlib.machinery
import sys
import threading
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DEFERRALS", "Deferral", "install", "installed"]


class _Absent:
    """An availability check while a listed module's body runs: False on the thread running that body (its
    guard is skipped), the real answer on every other thread (a module imported there at the same moment,
    listed or not, is not affected)."""

    def __init__(self, real: Callable[[], bool]) -> None:
        self.real: Callable[[], bool] = real.real if isinstance(real, _Absent) else real
        self.thread = threading.get_ident()

    def __call__(self) -> bool:
        return False if threading.get_ident() == self.thread else bool(self.real())


class LazyModule(types.ModuleType):
    """Stands for ``import <name>.<submodule>`` in a module whose guard was skipped: the first attribute
    read imports the submodules and answers from the real module."""

    def __init__(self, name: str, submodules: Sequence[str] = ()) -> None:
        super().__init__(name)
        self._submodules = tuple(submodules)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        for sub in self._submodules:
            importlib.import_module(f"{self.__name__}.{sub}")
        return getattr(importlib.import_module(self.__name__), attr)


def lazy_function(module: str, name: str) -> Callable[..., Any]:
    """Stands for ``from <module> import <name>`` (a function): imports it on the first call."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"{module}.{name}, imported on first use (gouache.deferred)."
    return call


class _NoPeftLayer:
    """Stands for peft's ``BaseTunerLayer`` in ``isinstance`` checks until peft is imported: nothing is an
    instance of it, as nothing can be a peft layer before peft is imported."""


@dataclass(frozen=True)
class StandIn:
    """What a skipped guard leaves bound: `make()` now, and `real` ("module:attribute"), if given, in its
    place once the dependency is imported."""

    make: Callable[[], Any]
    real: str | None = None


@dataclass(frozen=True)
class Deferral:
    """Modules (names, or prefixes ending with ".") whose body imports `dependency` behind the check
    `owner.check`; `stand_ins` are bound in each such module afterwards when its guard left them unbound.
    With `imported_only`, the module's body runs as is, and its check then answers True only once the
    dependency is imported (for a module that imports it inside a function only to test ``isinstance``)."""

    modules: tuple[str, ...]
    owner: str
    check: str
    dependency: str
    stand_ins: dict[str, StandIn] = field(default_factory=dict)
    imported_only: bool = False

    def covers(self, name: str) -> bool:
        return any(name == m or (m.endswith(".") and name.startswith(m)) for m in self.modules)


_PEFT_LAYER = "peft.tuners.tuners_utils:BaseTunerLayer"

DEFERRALS: tuple[Deferral, ...] = (
    Deferral(
        ("diffusers.schedulers.",),
        "diffusers.utils",
        "is_scipy_available",
        "scipy",
        {"scipy": StandIn(lambda: LazyModule("scipy", ("stats",)))},
    ),
    Deferral(
        ("transformers.loss.",),
        "transformers.utils",
        "is_scipy_available",
        "scipy",
        {"linear_sum_assignment": StandIn(lambda: lazy_function("scipy.optimize", "linear_sum_assignment"))},
    ),
    Deferral(
        ("diffusers.hooks.layerwise_casting", "diffusers.loaders.lora_base"),
        "diffusers.utils",
        "is_peft_available",
        "peft",
        {
            "BaseTunerLayer": StandIn(lambda: _NoPeftLayer, _PEFT_LAYER),
            "disable_input_dtype_casting": StandIn(
                lambda: lazy_function("peft.helpers", "disable_input_dtype_casting"),
                "peft.helpers:disable_input_dtype_casting",
            ),
        },
    ),
    # accelerate's SageMaker configuration (imported by ``accelerate.utils.other``): ~7 MB of AWS SDK.
    Deferral(
        ("accelerate.commands.config.sagemaker",),
        "accelerate.utils.imports",
        "is_boto3_available",
        "boto3",
        {"boto3": StandIn(lambda: LazyModule("boto3"))},
    ),
    # ``_unwrap_model`` (every pipeline's ``register_modules``) imports peft to test for a ``PeftModel``.
    Deferral(
        ("diffusers.pipelines.pipeline_loading_utils",),
        "diffusers.utils",
        "is_peft_available",
        "peft",
        imported_only=True,
    ),
)

#: (module, name, "module:attribute") of the stand-ins bound so far, replaced when their dependency loads.
_BOUND: list[tuple[types.ModuleType, str, str]] = []


def _on_peft_imported(peft: types.ModuleType) -> None:
    """Peft is imported: the real names replace the stand-ins, and layerwise casting turns its peft branch
    on (``_SHOULD_DISABLE_PEFT_INPUT_AUTOCAST``, which its guard computed as False)."""
    for module, name, real in [b for b in _BOUND if b[2].startswith("peft.")]:
        where, _, attr = real.partition(":")
        try:
            module.__dict__[name] = getattr(importlib.import_module(where), attr)
        except (ImportError, AttributeError):
            return  # another peft: the stand-ins stay, as harmless as before
        _BOUND.remove((module, name, real))
    casting = sys.modules.get("diffusers.hooks.layerwise_casting")
    if (
        casting is not None
        and casting.__dict__.get("BaseTunerLayer") is not _NoPeftLayer
        and casting.__dict__.get("_SHOULD_DISABLE_PEFT_INPUT_AUTOCAST") is False
    ):
        casting.__dict__["_SHOULD_DISABLE_PEFT_INPUT_AUTOCAST"] = True


def _only_with_peft_layers(function: Callable[..., None]) -> Callable[..., None]:
    """`function` (which imports peft, then scales the model's peft layers) once peft is imported; before,
    there is no peft layer to scale, so nothing to do (and nothing to import)."""

    @functools.wraps(function)
    def scale(*args: Any, **kwargs: Any) -> None:
        if "peft" in sys.modules:
            function(*args, **kwargs)

    return scale


def _on_peft_utils_imported(utils: types.ModuleType) -> None:
    """Every prompt encoding of diffusers' SD pipelines calls ``unscale_lora_layers``, which imports peft
    before it looks at its arguments; wrapped before the pipelines import it from ``diffusers.utils``."""
    for name in ("scale_lora_layers", "unscale_lora_layers"):
        function = utils.__dict__.get(name)
        if callable(function) and "peft" not in sys.modules:
            utils.__dict__[name] = _only_with_peft_layers(function)


#: Run after a module's body, by module name.
AFTER_IMPORT: dict[str, Callable[[types.ModuleType], None]] = {
    "peft": _on_peft_imported,
    "diffusers.utils.peft_utils": _on_peft_utils_imported,
}


def _imported_only(check: Callable[[], bool], dependency: str) -> Callable[[], bool]:
    def answer() -> bool:
        return dependency in sys.modules and check()

    return answer


class _DeferringLoader(importlib.abc.Loader):
    """Runs a module's body with its deferrals' checks answering False, then restores them and binds the
    stand-ins; or runs a completion after the body (`AFTER_IMPORT`)."""

    def __init__(self, inner: Any, deferrals: list[Deferral], after: Callable[[Any], None] | None) -> None:
        self.inner = inner
        self.deferrals = deferrals
        self.after = after

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        create = getattr(self.inner, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: types.ModuleType) -> None:
        restore: list[tuple[types.ModuleType, str, Any, _Absent]] = []
        try:
            for deferral in self.deferrals:
                if deferral.imported_only or deferral.dependency in sys.modules:
                    continue  # already imported: deferring saves nothing
                owner = importlib.import_module(deferral.owner)
                real = getattr(owner, deferral.check, None)
                if callable(real):
                    absent = _Absent(real)
                    setattr(owner, deferral.check, absent)
                    restore.append((owner, deferral.check, real, absent))
            self.inner.exec_module(module)
        finally:
            for owner, check, real, absent in reversed(restore):
                setattr(owner, check, real)
                for loaded in list(sys.modules.values()):  # this module and any it imported meanwhile
                    namespace = getattr(loaded, "__dict__", None)
                    if namespace is not None and namespace.get(check) is absent:
                        namespace[check] = real
        deferred = {check for _, check, _, _ in restore}
        for deferral in self.deferrals:
            if deferral.imported_only:
                answers = module.__dict__.get(deferral.check)
                if callable(answers) and deferral.dependency not in sys.modules:
                    module.__dict__[deferral.check] = _imported_only(answers, deferral.dependency)
            elif deferral.check in deferred:
                for name, stand_in in deferral.stand_ins.items():
                    if name not in module.__dict__:
                        module.__dict__[name] = stand_in.make()
                        if stand_in.real is not None:
                            _BOUND.append((module, name, stand_in.real))
        if self.after is not None:
            self.after(module)

    def __getattr__(self, name: str) -> Any:  # get_source, get_code, is_package, ... of the real loader
        return getattr(self.inner, name)


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self) -> None:
        self._local = threading.local()

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        deferrals = [d for d in DEFERRALS if d.covers(fullname)]
        after = AFTER_IMPORT.get(fullname)
        if (not deferrals and after is None) or getattr(self._local, "busy", False):
            return None
        self._local.busy = True
        try:
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        finally:
            self._local.busy = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        spec.loader = _DeferringLoader(spec.loader, deferrals, after)
        return spec


_FINDER = _Finder()


def install() -> None:
    """Defer the imports above from now on (idempotent)."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def installed() -> bool:
    return _FINDER in sys.meta_path
