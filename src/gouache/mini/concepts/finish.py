"""The finish stage's part for concepts, at the output size: the setting's colour field, then each concept's
drawing in the place the planner laid out (:mod:`gouache.mini.concepts.backdrops`,
:mod:`gouache.mini.concepts.drawing`). The text encoder's ``finish_render`` hook chains it before the
lettering, so words stay on top.

Edits: an inpainting edit's concepts are fitted into the mask's bounds (:func:`fit_placed`, the same linear
map as the layout tokens and the lettering), so they are drawn where the model painted the scene, not cut
off by the blend-back; a whole-image edit draws the input's own concepts again
(:mod:`gouache.mini.keeping`), before the ones its prompt asks for (a concept the input already has is not
drawn twice)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gouache.mini.concepts.atlas import Concept, default_atlas
from gouache.mini.concepts.backdrops import BACKDROPS, apply_backdrop
from gouache.mini.concepts.drawing import draw_concepts
from gouache.mini.scenes.request import SceneRequest
from gouache.mini.scenes.truth import SceneTruth
from gouache.mini.scenes.vocabulary import COLOURS, RGB, SHADES, Box

__all__ = ["Placed", "finish_concepts", "fit_placed", "placed_concepts"]

After = Callable[[Any], Any]
#: A concept drawn at (cx, cy) (fractions of the width and height) with a radius (a fraction of the shorter
#: side), recoloured to the RGB when given.
Placed = tuple[Concept, float, float, float, RGB | None]


def placed_concepts(request: SceneRequest, truth: SceneTruth) -> list[Placed]:
    """Where ``truth`` (the scene laid out for ``request``) puts each concept ``request`` asks for, and its
    colour when a colour word may recolour it."""
    atlas = default_atlas()
    if atlas is None:
        return []
    wanted = [o for o in request.objects if o.concept is not None]
    in_truth = [o for o in truth.objects if o.concept is not None]
    placed: list[Placed] = []
    for asked, o in zip(wanted, in_truth, strict=False):
        concept = atlas.by_id.get(o.concept or "")
        if concept is None:
            continue
        rgb = None
        if concept.recolour and asked.colour is not None:
            rgb = SHADES[asked.shade][1] if asked.shade in SHADES else COLOURS[asked.colour]
        placed.append((concept, o.cx, o.cy, o.radius, rgb))
    return placed


def fit_placed(placed: Placed, region: Box) -> Placed:
    """``placed`` moved into ``region`` (canvas units) as the layout tokens are when inpainting
    (:func:`gouache.mini.grounding.fit_to_region`): the centre maps linearly, the radius shrinks by the
    region's shorter side."""
    concept, cx, cy, radius, rgb = placed
    x0, y0, x1, y1 = region
    w, h = max(1e-3, x1 - x0), max(1e-3, y1 - y0)
    return (concept, x0 + cx * w, y0 + cy * h, radius * min(w, h), rgb)


def finish_concepts(
    request: SceneRequest,
    layout: Callable[[], SceneTruth | None],
    then: After | None,
    region: Box | None = None,
    kept: tuple[Placed, ...] = (),
) -> After | None:
    """What to do at the output size for ``request``'s backdrop and concepts (then ``then``), or ``then``
    alone when there is nothing to draw. ``layout`` gives the scene as laid out for this image (its seed);
    ``region`` is an inpainting edit's mask bounds, ``kept`` the input's own concepts in a whole-image
    edit."""
    wanted = any(o.concept is not None for o in request.objects)
    if request.backdrop is None and not wanted and not kept:
        return then
    truth = layout()
    if truth is None and not kept:
        return then
    placed = placed_concepts(request, truth) if truth is not None else []
    if region is not None:
        placed = [fit_placed(p, region) for p in placed]
    had = {p[0].id for p in kept}
    placed = [*kept, *(p for p in placed if p[0].id not in had)]
    backdrop = request.backdrop if truth is not None else None
    ground = backdrop is not None and BACKDROPS[backdrop].ground
    planned = truth.background_rgb if truth is not None else None

    def after(final: Any) -> Any:
        out = final if backdrop is None else apply_backdrop(final, backdrop, planned)
        out = draw_concepts(out, placed, shadow=ground) if placed else out
        return then(out) if then is not None else out

    return after
