"""The finish stage's part for concepts, at the output size: the setting's colour field, then each concept's
drawing in the place the planner laid out (:mod:`gouache.mini.concepts.backdrops`,
:mod:`gouache.mini.concepts.drawing`). The text encoder's ``finish_render`` hook chains it before the
lettering, so words stay on top."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gouache.mini.concepts.atlas import default_atlas
from gouache.mini.concepts.backdrops import BACKDROPS, apply_backdrop
from gouache.mini.concepts.drawing import draw_concepts
from gouache.mini.scenes.request import SceneRequest
from gouache.mini.scenes.truth import SceneTruth
from gouache.mini.scenes.vocabulary import COLOURS, SHADES

__all__ = ["finish_concepts"]

After = Callable[[Any], Any]


def finish_concepts(
    request: SceneRequest, layout: Callable[[], SceneTruth | None], then: After | None
) -> After | None:
    """What to do at the output size for ``request``'s backdrop and concepts (then ``then``), or ``then``
    alone when it names neither. ``layout`` gives the scene as laid out for this image (its seed)."""
    atlas = default_atlas()
    wanted = [o for o in request.objects if o.concept is not None]
    if request.backdrop is None and not wanted:
        return then
    truth = layout()
    if truth is None:
        return then
    placed = []
    if atlas is not None:
        in_truth = [o for o in truth.objects if o.concept is not None]
        for asked, o in zip(wanted, in_truth, strict=False):
            concept = atlas.by_id.get(o.concept or "")
            if concept is None:
                continue
            rgb = None
            if concept.recolour and asked.colour is not None:
                rgb = SHADES[asked.shade][1] if asked.shade in SHADES else COLOURS[asked.colour]
            placed.append((concept, o.cx, o.cy, o.radius, rgb))
    backdrop = request.backdrop
    ground = backdrop is not None and BACKDROPS[backdrop].ground

    def after(final: Any) -> Any:
        out = final if backdrop is None else apply_backdrop(final, backdrop, truth.background_rgb)
        out = draw_concepts(out, placed, shadow=ground) if placed else out
        return then(out) if then is not None else out

    return after
