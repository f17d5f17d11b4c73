"""Rebuilds the 3DDFA_V2 MobileNet-0.5 face-pose graph that gst-dawn ships in models/face/.

``python -m tools.face --checkpoint mb05_120x120.pth --out DIR`` loads the MIT-licensed
3DDFA_V2 checkpoint (as shipped in DAWN-pytorch's ``extract_init_states/weights/``) into our own
MobileNet-0.5 definition, exports it to ONNX with both heads (``param`` [N,62] and ``lm_aux``
[N,136]) and compares it with the shipped graph on random inputs and on real face crops.

Only ``cli`` is torch-free; ``mobilenet`` and ``convert`` need torch, onnx, onnxruntime, numpy and
pillow and are imported lazily by ``__main__``.
"""
