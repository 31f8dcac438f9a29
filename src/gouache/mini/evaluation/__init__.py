"""The exact evaluator of gouache-mini: generated images scored against the ground truth of held-out scenes.

No model acts as judge. Every prompt is the (paraphrased) caption of a procedurally generated scene
(:mod:`gouache.mini.scenes`) whose truth is known exactly; the generated image is analysed with plain image
processing and compared with that truth, for what the caption mentions only.

The evaluator knows nothing of the server: :func:`evaluate` takes any ``generate(prompt, seed)`` function.
``gouache eval`` wires it to Gouache's own image service (:mod:`gouache.eval_service`), so
:mod:`gouache.mini` never imports the service.

One room per job
----------------
* :mod:`.held_out`: which scenes are evaluated (and the seed contract with the trainer).
* :mod:`.analysis`: reading objects back from an image: background, colour unmixing, regions.
* :mod:`.shape_fit`: which shape a region is, from templates drawn by the generator's own code.
* :mod:`.ocr`: reading the word in an image.
* :mod:`.scoring`: one scene's verdicts, metric by metric.
* :mod:`.report`: verdicts aggregated into per-metric and per-kind accuracies, as JSON and a table.
* :mod:`.runner`: :func:`evaluate`, the loop that generates, scores and checks determinism.

Held-out scenes
---------------
:func:`held_out_scenes` draws scene ``i`` of an evaluation run with seed ``seed`` from generator seed
``HELD_OUT_BASE + seed * HELD_OUT_STRIDE + i`` (``10**9 + seed * 10**6 + i``), with ``paraphrase=True``
captions (held-out wording, :data:`gouache.mini.scenes.captions.PARAPHRASE_LEADS`). **Contract with the
trainer: training draws generator seeds below** :data:`HELD_OUT_BASE` **(10**9) and never at or above it**,
so no evaluation scene (same layout, colours, words) is ever a training image. Kinds are cycled through
``kinds`` so every kind gets the same share.

Metrics (each trial is a yes/no; accuracy = correct / trials)
-------------------------------------------------------------
* ``colour`` (one trial per mentioned object; a count group is one trial; a sign when the caption names its
  colour): a region of the object's colour exists that is at least :data:`MIN_AREA_FRACTION` of the
  object's expected area (from its truth radius, not its position); in ``single`` scenes it must also be the
  largest foreground region, not counting its own outline (:func:`outlines`).
* ``shape`` (per object with a shape): the object's region (its colour's largest; the best shape fit when
  objects share a colour; in single scenes the largest foreground region if none has its colour) is
  classified by :func:`shape_scores`: templates of every shape of
  :data:`~gouache.mini.scenes.vocabulary.SHAPES` drawn by the generator's own drawing code at the region's
  centroid, over :data:`TEMPLATE_SCALES` (refined by :data:`SCALE_REFINE`) of an estimated radius; best
  intersection-over-union with the region's mask (or with the mask plus an outline hugging it), and for
  hatched regions (sketch style, :func:`is_hatched`) soft IoU of 3x3-averaged coverage against the shape drawn
  by the generator's sketch code. In a count scene the shape is right when at least half the colour's regions
  classify as it.
* ``relation``: the centroids of the two named objects' regions satisfy the relation with a tolerant margin
  (:data:`RELATION_TOLERANT_MARGIN` along the axis, off-axis at most :data:`RELATION_TOLERANT_RATIO` times
  that; "next to" also needs the gap between the regions' bounding circles to be at most
  :data:`NEXT_TO_TOLERANT_GAP`). A sign is found as its colour's largest region when the caption names
  that colour, else as the largest region of any other colour than the companion's.
* ``count``: the number of regions of the named colour (each at least :data:`COUNT_MIN_SHARE` of the
  largest one and of a plausible size) equals the count.
* ``position`` (single scenes that name one): the region's centroid lies in the named 3x3 cell.
* ``text``: OCR (``rapidocr-onnxruntime``: ONNX weights shipped inside the package, nothing downloaded) of
  the image resized to :data:`OCR_SIZE` px (:func:`read_text`); exact when a read line, or all lines
  joined, equals the word (case-insensitive, letters and digits only, the digit 0 read as O).
  ``text_cer`` is the mean character error rate (edit distance / word length, capped at 1).
* ``determinism``: the first :data:`DETERMINISM_CHECKS` prompts are generated a second time with the same
  seed; identical pixels count as correct.

Not scored: size, background, style and text colour (the caption may mention them; the report leaves them
out).
"""

from gouache.mini.evaluation.analysis import EVAL_SIZE, Analysis, Region, analyse
from gouache.mini.evaluation.held_out import HELD_OUT_BASE, HELD_OUT_STRIDE, held_out_scenes, held_out_seed
from gouache.mini.evaluation.ocr import edit_distance, read_text, text_match
from gouache.mini.evaluation.report import METRICS, EvalReport, MetricScore, report_table
from gouache.mini.evaluation.runner import DETERMINISM_CHECKS, GenerateFn, evaluate
from gouache.mini.evaluation.scoring import SceneResult, score_scene
from gouache.mini.evaluation.shape_fit import classify_shape, shape_scores

__all__ = [
    "DETERMINISM_CHECKS",
    "EVAL_SIZE",
    "HELD_OUT_BASE",
    "HELD_OUT_STRIDE",
    "METRICS",
    "Analysis",
    "EvalReport",
    "GenerateFn",
    "MetricScore",
    "Region",
    "SceneResult",
    "analyse",
    "classify_shape",
    "edit_distance",
    "evaluate",
    "held_out_scenes",
    "held_out_seed",
    "read_text",
    "report_table",
    "score_scene",
    "shape_scores",
    "text_match",
]
