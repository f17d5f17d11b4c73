"""Parity with upstream DAWN: run upstream's own inference code and the port's engine on the same
audio, portrait and noise, and compare them stage by stage (docs/fidelity.md).

``python -m tools.parity upstream`` (needs torch: ``pip install -e ".[export]"``) builds the
networks a pack came from (its random-weight seed, or the trained checkpoints), runs
``unified_video_generator.py``'s stages with every random draw answered from the port's noise,
runs ``examples/parity.rs`` on the pack with the same inputs, and prints the max abs and relative
difference of the audio features, PBNet deltas, conditioning, ε of every step, final latents and
frames, failing above each stage's bound. ``python -m tools.parity drift`` (torch-free) measures
how far the port's chunked generation is from one pass.
"""
