"""Procedural, captioned scenes with exact ground truth: the training data and the test set of gouache-mini.

Why this exists
---------------
``gouache-mini`` is the small latent-diffusion model embedded in Gouache as its default. It is trained from
scratch on a CPU, so it cannot learn from web images: it learns from a closed little world that we generate
ourselves. Every scene is drawn with Pillow from a seed and comes with the caption it was drawn from and the
exact truth behind it (each object's shape, colour, centre, radius, size band, style, the background, the
relation between two objects, the count, the word on a sign). Because the world is closed, an evaluator can
score a generated image *exactly*: is there a red thing where the prompt said, is it left of the blue one,
are there three of them, does the sign say STOP. :func:`~.shapes.object_mask`, :func:`~.truth.probe_point`,
:func:`~.truth.dominant_colour_name`, :func:`~.truth.position_name` and :func:`~.truth.relation_holds` are
the shared definitions that the evaluator uses, so training data and scoring can never drift apart.

One room per job
----------------
* :mod:`.vocabulary`: the closed world's words and numbers (shapes, colours, sizes, positions, relations,
  styles, backgrounds, geometry constants, words on signs) and the synonyms a caption may use for them.
* :mod:`.fonts`: the fonts on this machine, and fitting a word's ink into a box.
* :mod:`.truth`: what is true about a scene (:class:`~.truth.SceneTruth`) and the colour and geometry rules
  shared with the evaluator.
* :mod:`.shapes`: the shapes' geometry and how a shape is filled or outlined with Pillow.
* :mod:`.layout`: placing objects, pairs in a relation and words, as the generator draws its scenes.
* :mod:`.request`: a scene asked for in part (:class:`~.request.SceneRequest`, what gouache-mini's caption
  reader gives) laid out with the same placement code (:func:`~.request.layout_scene`).
* :mod:`.rendering`: drawing a truth with Pillow (backgrounds, shadows, sketches, text).
* :mod:`.captions`: wording a truth as a caption.
* :mod:`.generator`: :func:`~.generator.generate_scene`, the seed -> (image, caption, truth) generator.

Serving (the text encoder reads a caption, lays it out and turns it into tokens) imports only vocabulary,
fonts, truth, layout and request: never the renderer or the caption generator, which only training and
evaluation need. This package's ``__init__`` therefore imports nothing; import from the module you need.

Design decisions
----------------
* The vocabulary is small and unambiguous: :data:`~.vocabulary.SHAPES`, :data:`~.vocabulary.COLOURS` (fixed
  RGB values at least ~97 apart in RGB), three size bands with gaps between them, a 3x3 position grid and
  five relations whose geometric definitions (:func:`~.truth.relation_holds`) include a clear margin. A
  background is never within :data:`~.vocabulary.BACKGROUND_MIN_DISTANCE` of any object colour, and its
  texture is a low-contrast shade of one named colour, so the background keeps a single name.
* Scene kinds (:data:`~.vocabulary.KINDS`) let training and evaluation be balanced: ``single``, ``pair``,
  ``count``, ``text`` and ``mixed``.
* Captions vary (templates, synonyms, word order, digits vs number words, optional background and style
  phrases), so the text encoder learns meaning rather than one sentence pattern. ``paraphrase=True`` uses
  held-out leading phrases (:data:`~.captions.PARAPHRASE_LEADS`) and a few held-out sentence structures that
  never occur in training captions, so an evaluator can test unseen wording.
* The layout is drawn from ``random.Random(seed)``, rendering noise (sketch jitter, texture period) from a
  second stream and caption wording from a third, all derived from the seed: the same seed gives the same
  picture whether ``paraphrase`` is on or off, and :func:`~.captions.caption_for` can draw many captions for
  one truth.
* Scenes are rendered at ``size * supersample`` and box-downsampled (exact area coverage, no ringing) for
  clean anti-aliased edges, fast enough (about 0.5 ms at 64 px) to generate training data on the fly.

Coordinates in the truth are canvas units in ``[0, 1]``; x grows to the right and y grows *downwards*.
"""
