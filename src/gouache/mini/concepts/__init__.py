"""gouache-mini's vocabulary of everyday things (issue 22): a concept atlas of openly licensed, named
drawings (:mod:`~gouache.mini.concepts.atlas`, built by :mod:`~gouache.mini.concepts.build` from
:mod:`~gouache.mini.concepts.sources`), the caption reader's hook that finds a noun's concept
(:mod:`~gouache.mini.concepts.reader`), settings as backdrops (:mod:`~gouache.mini.concepts.backdrops`), the
finish stage that draws them (:mod:`~gouache.mini.concepts.finish`, :mod:`~gouache.mini.concepts.drawing`),
and their evaluator (:mod:`~gouache.mini.concepts.evaluate`, :mod:`~gouache.mini.concepts.classifier`).
The planner places, sizes, counts and relates a concept like a shape; the UNet paints the scene around it;
the concept's drawing is retrieved, not generated (``MODEL_CARD.md``)."""
