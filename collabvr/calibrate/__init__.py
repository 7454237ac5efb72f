"""``collabvr calibrate``: how good a VLM is as verifier and planner, measured on clips with known truth.

The package reads one way, each module importing only those above it in this list:

* :mod:`~collabvr.calibrate.labelled`: the labelled sim set (clips with known errors, plan frames);
* :mod:`~collabvr.calibrate.footage`: the labelled set made of a benchmark's ground-truth footage;
* :mod:`~collabvr.calibrate.measure`: verify and plan on a labelled set; the rates with their intervals;
* :mod:`~collabvr.calibrate.predict`: ``--predict``, the rates as a sim preset and a paired sim benchmark;
* :mod:`~collabvr.calibrate.report`: ``calibration.md``, ``calibration.json`` and the plot.
"""

from collabvr.calibrate.footage import footage_set
from collabvr.calibrate.labelled import (
    BAD_KINDS,
    ERROR_KIND,
    KINDS,
    Clip,
    Label,
    LabelMismatch,
    decoded_label,
    kind_mix,
    labelled_set,
    suite_specs,
)
from collabvr.calibrate.measure import calibrate, wilson
from collabvr.calibrate.predict import check_predict, predict
from collabvr.calibrate.report import table, write

__all__ = [
    "BAD_KINDS", "ERROR_KIND", "KINDS", "Clip", "Label", "LabelMismatch", "calibrate", "check_predict", "decoded_label", "footage_set",
    "kind_mix", "labelled_set", "predict", "suite_specs", "table", "wilson", "write",
]
