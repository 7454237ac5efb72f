"""One compiled graph, two sets of backends: the backends are chosen per run through ``context=``.

    python examples/two_backends.py
"""

from __future__ import annotations

from collabvr import Context
from collabvr.graph.collabvr import graph

for vgm, vlm in (("sim:weak", "sim:accurate"), ("sim:strong", "sim:noisy")):
    out = graph.invoke({"task": "sim:sort/medium"}, context=Context(vgm=vgm, vlm=vlm, seed=3, out_dir=f"runs/example-{vgm}"))
    print(f"{vgm:10} {vlm:12} {out['status']:18} score {out['score']['score']:.2f}  clip-seconds {out['compute']['clip_seconds']:g}")
