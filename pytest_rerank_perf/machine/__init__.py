"""The machine a run measures on: the device seam (``device``: the only module that calls ``torch.cuda``), NVML
(``nvml``: the only importer of ``pynvml``), the hardware profile that keys baselines, the speed fingerprint recorded
with them, and the peak FLOP/s that MFU divides by."""
