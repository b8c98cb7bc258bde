"""A/B: two builds of the reranker stack measured on one machine, interleaved, and judged on paired ratios.

A side is a SPEC (``spec``): a git ref or commit, ``.`` (the working tree), a directory holding a checkout, or
``pip:REQ[,REQ...]`` (the working tree with other packages). ``sides`` makes each runnable (a checkout extracted
once, an environment built once); ``schedule`` orders the K pairs of fresh processes; ``paired`` judges one metric
of one cell on the per-pair ratios; ``judge`` turns the pairs' sections into one ``ABResult`` (``result``), whose
exit code is what automation (``git bisect run``) reads. The plugin runs the processes (``plugin/ab.py``).
"""

from __future__ import annotations

from .result import ABResult

__all__ = ["ABResult"]
