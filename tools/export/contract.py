"""The model-pack contract v1 (docs/model-pack.md) as data. Torch-free.

Dims are ints (fixed) or strings (symbolic axes that must be dynamic in the graph).
"""

FORMAT = "gst-dawn-model-pack"
VERSION = 1
ROLES = ("audio_encoder", "pbnet_pose", "pbnet_blink", "portrait_encoder", "denoiser", "decoder")
RESOLUTIONS = (64, 128, 256)          # 64 is for test packs only
EXPORT_RESOLUTIONS = (128, 256)       # what DAWN ships checkpoints for
SYMBOLIC = ("T", "Th", "N", "F")

FPS = 25
SAMPLE_RATE = 16000
FEATURE_DIM = 1024
NOISE_DIM = 256
POSE_DIM = 6
EYE_DIM = 2
COND_DIM = FEATURE_DIM + POSE_DIM + EYE_DIM
LATENT_CHANNELS = 3
ATTENTION_WINDOW = 40
POSE_MIN = [-90.0, -90.0, -90.0, 0.0, 0.0, 0.0]
POSE_MAX = [90.0, 90.0, 90.0, 1.0, 720.0, 1080.0]
DEFAULT_INIT_POSE = [0.0, 0.0, 0.0, 4.79e-4, 56.5, 64.9]
DEFAULT_INIT_EYE = [0.3, 0.3]


def graph_file(role):
    return f"{role}.onnx"


def graph_io(role, resolution, cs="Cs", noise_dim=NOISE_DIM, feature_dim=FEATURE_DIM,
             cond_dim=COND_DIM):
    """(inputs, outputs) of one role: lists of (name, dims).

    ``cs`` is the static channel count (an int for a concrete pack, or the string "Cs" for the
    resolution-independent form used when comparing packs)."""
    S = resolution
    if isinstance(S, int):
        s, S2 = S // 4, S // 2
    else:  # symbolic form for normalised signatures
        s, S2 = "s", "S/2"
    img = ("src_img", [1, 3, S, S])
    enc = [("skip0", [1, 64, S, S]), ("skip1", [1, 128, S2, S2]), ("feat", [1, 256, s, s])]
    if role == "audio_encoder":
        return [("input_values", [1, "T"])], [("last_hidden_state", [1, "Th", feature_dim])]
    if role in ("pbnet_pose", "pbnet_blink"):
        d = POSE_DIM if role == "pbnet_pose" else EYE_DIM
        return ([("init_state", [1, 1, d]), ("z", ["N", 1, noise_dim]), ("audio", [1, "N", feature_dim])],
                [("delta", [1, "N", d])])
    if role == "portrait_encoder":
        return ([img, ("face_mask", [1, 1, S, S])], enc + [("static", [1, cs, s, s])])
    if role == "denoiser":
        lat = [1, LATENT_CHANNELS, "F", s, s]
        return ([("x_t", lat), ("static", [1, cs, s, s]), ("timestep", [1]), ("cond", [1, "F", cond_dim])],
                [("eps", list(lat))])
    if role == "decoder":
        return ([img] + enc + [("flow", ["F", s, s, 2]), ("occlusion", ["F", 1, s, s])],
                [("frames", ["F", 3, S, S])])
    raise KeyError(f"unknown graph role {role!r}")


def bind(dims, sizes):
    """``dims`` with symbolic axes replaced from ``sizes`` ({"T": 720, ...}); "Th" follows T."""
    sizes = dict(sizes)
    if "T" in sizes and "Th" not in sizes:
        sizes["Th"] = (sizes["T"] - 80) // 320
    return [sizes.get(d, d) if isinstance(d, str) else d for d in dims]


def shape_mismatches(role, resolution, cs, shapes, sizes=None):
    """Where ``shapes`` ({io name: dims}) disagree with the contract; messages naming the file.

    Without ``sizes`` the shapes are declared ones (a dim an int, a str for a dynamic axis, None
    when unknown): rank, fixed sizes and fixed vs dynamic are compared. With ``sizes`` (e.g.
    {"T": 720}) they are the shapes of real outputs (ints) and are compared with the contract's
    dims bound to those sizes; an axis the sizes do not bind is not compared."""
    ins, outs = graph_io(role, resolution, cs=cs)
    want = dict(ins + outs)
    fmt = lambda ds: "[" + ", ".join("?" if d is None else str(d) for d in ds) + "]"
    problems = []
    for name, have in shapes.items():
        dims = want.get(name)
        if dims is None:
            continue
        dims = bind(dims, sizes) if sizes else dims

        def bad(h, w):
            if h is None:
                return False
            if isinstance(w, int):
                # A symbolic dim where the contract fixes the size is one the tracer could not
                # infer (torch names it after the op, e.g. `Wheredelta_dim_0`): unknown, like
                # None. The stamp fixes it and the verifier checks the real output's size.
                return isinstance(h, int) and h != w
            return sizes is None and isinstance(h, int)  # declared fixed, contract dynamic

        if len(have) != len(dims) or any(bad(h, w) for h, w in zip(have, dims)):
            problems.append(f"{graph_file(role)}: `{name}` is {fmt(have)}, the contract says "
                            f"{fmt(dims)}")
    return problems
