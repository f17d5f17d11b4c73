"""Benchmarks that compare gst-dawn with the upstream PyTorch DAWN (see tools/bench/README.md).

``side_by_side`` (the driver) and ``machine`` are torch-free; ``torch_ref`` needs torch and the
exporter's environment and is only ever run as a child process of the driver.
"""
