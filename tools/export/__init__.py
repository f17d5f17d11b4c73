"""gst-dawn exporter: DAWN PyTorch checkpoints -> gst-dawn model pack (docs/model-pack.md).

Only the torch-free parts (contract, manifest, provenance, signature, CLI argument checks) are
imported eagerly; everything that needs torch lives in modules imported lazily by
``tools.export.pipeline`` so that the unit tests run without torch.
"""

TOOL_NAME = "gst-dawn-export"
__version__ = "0.1.0"
TOOL = f"{TOOL_NAME} {__version__}"
