"""Serving under load: the dynamic batcher (``batching``, with its intake ``batch_prep`` and settings
``batcher_config``), the open- and closed-loop load generator (``loadgen``) and ``safe_predict``."""
