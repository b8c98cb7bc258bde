"""The regression gate: comparison and thresholds (``compare``, ``thresholds``), the verdict tables
(``verdict``), and the simulation of how often it fires (``detection_power``)."""
