"""The regression gate: the fail-closed verdict over a run's planned cells (``judge``, ``outcome``), one metric's
comparison (``compare``), between-process drift (``drift``), the machine check (``machine``), thresholds, the
verdict tables (``verdict``), and the simulation of how often it fires (``detection_power``)."""
