"""The export itself: build the upstream networks, export the six graphs, write the manifest,
verify against PyTorch. Needs torch, onnx, onnxruntime (imported lazily by ``__main__``)."""

import json
import os
import platform
import time

import numpy as np
import torch

from . import contract as C
from . import manifest as M
from . import provenance as P
from . import signature as SIG
from . import upstream as U
from . import graphs as G
from .checkpoints import precheck

OPSET = 17
IR_VERSION_MAX = 13  # onnxruntime 1.31 reads IR <= 13 (onnx 1.23 writes 14 by default)

FACE_LOC_NOTE = (
    "Face_loc_Encoder weights are in no DAWN checkpoint (training optimised and saved only the "
    "diffusion U-Net, so this 2-conv encoder stayed at its random initialisation). They were "
    "reproduced as the old demo scripts did: torch.manual_seed(1234), then FlowDiffusion built "
    "with the released config on the CPU; this matches training only if the construction order "
    "and PyTorch's CPU init stream are those of the authors' runs (unverifiable without their "
    "weights). See docs/exporter.md.")


def log(msg):
    print(msg, flush=True)


def face_loc_digest(module):
    """sha256 over the Face_loc_Encoder tensors (state-dict order, float32 little-endian bytes)."""
    import hashlib

    h = hashlib.sha256()
    for k, v in module.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().float().contiguous().numpy().astype("<f4").tobytes())
    return "sha256:" + h.hexdigest()


# ------------------------------------------------------------------------------ random weights

def _perturb_constant_tensors(module, gen):
    """Default initialisation leaves norms at 1/0 and BN statistics at 0/1; give every tensor
    that is constant a random value so that the parity check sees those parameters used."""
    n = 0
    with torch.no_grad():
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            if not t.is_floating_point() or t.numel() < 2:
                continue
            flat = t.reshape(-1)
            if not bool((flat == flat[0]).all()):
                continue
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=gen))
            else:
                t.add_(0.1 * torch.randn(t.shape, generator=gen))
            n += 1
    return n


# ------------------------------------------------------------------------------------- building

def build_networks(args):
    """(FlowDiffusion, {"pose", "blink": PBNet CVAE}, HubertModel, {key: checkpoint file used})."""
    files = {}
    ckpts = None
    if not args.random_weights:  # every file problem at once, before anything slow
        ckpts, hub_files, opts = precheck(args)
    dawn_src = U.add_dawn_src(args.dawn_src)
    if U.stubbed:
        log(f"note: not installed, stubbed for upstream imports (unused by the export): {', '.join(U.stubbed)}")
    t0 = time.time()
    fd, vcfg = U.build_flow_diffusion(dawn_src, args.resolution)
    log(f"built FlowDiffusion ({args.resolution}) in {time.time() - t0:.1f}s; "
        f"Face_loc_Encoder reproduced with seed {U.FACE_LOC_SEED}")
    if vcfg.get("win_width") != C.ATTENTION_WINDOW:
        raise SystemExit(f"config/DAWN_{args.resolution}.yaml win_width {vcfg.get('win_width')} != "
                         f"contract attention_window {C.ATTENTION_WINDOW}")
    gen = torch.Generator().manual_seed(args.seed)
    pbnets = {}
    if args.random_weights:
        n = _perturb_constant_tensors(fd.generator, gen) + _perturb_constant_tensors(fd.unet, gen)
        log(f"random weights: default init (seed {U.FACE_LOC_SEED} construction) + {n} constant "
            f"tensors perturbed (seed {args.seed})")
        for kind in ("pose", "blink"):
            torch.manual_seed(args.seed + (1 if kind == "pose" else 2))
            pbnets[kind], _ = U.build_pbnet(kind)
            _perturb_constant_tensors(pbnets[kind].decoder, gen)
        torch.manual_seed(args.seed + 3)
        hubert = U.build_hubert(None)
        _perturb_constant_tensors(hubert, gen)
    else:
        unsafe = bool(getattr(args, "allow_unsafe_unpickling", False))
        log(f"loading {ckpts['lfg']} (generator) and {ckpts['dawn']} (diffusion)")
        U.load_lfg(fd, ckpts["lfg"], unsafe)
        U.load_dawn(fd, ckpts["dawn"], unsafe)
        for kind in ("pose", "blink"):
            pbnets[kind], _ = U.build_pbnet(kind, opts[kind])
            U.load_pbnet(pbnets[kind], ckpts[f"pbnet_{kind}"], unsafe)
        log(f"loading {hub_files[1]} (HuBERT-Large)")
        hubert = U.build_hubert(args.hubert, hub_files)
        files = {k: v for k, v in ckpts.items()}
        for i, f in enumerate(hub_files):
            files[f"hubert_{i}"] = f
    fd.eval()
    for m in pbnets.values():
        m.eval()
    hubert.eval()
    return fd, pbnets, hubert, files


# -------------------------------------------------------------------------------------- inputs

def _rng(seed):
    return np.random.default_rng(seed)


def make_inputs(role, size, S, rng):
    """Random contract inputs for one graph (numpy float32). ``size`` is T, N or F."""
    s = S // 4
    f32 = np.float32
    if role == "audio_encoder":
        x = rng.standard_normal((1, size)).astype(f32)
        return {"input_values": (x - x.mean()) / np.sqrt(x.var() + 1e-7)}
    if role in ("pbnet_pose", "pbnet_blink"):
        d = 6 if role == "pbnet_pose" else 2
        init = rng.uniform(0.2, 0.8, (1, 1, d)).astype(f32)
        return {"init_state": init, "z": rng.standard_normal((size, 1, 256)).astype(f32),
                "audio": rng.standard_normal((1, size, 1024)).astype(f32)}
    if role == "portrait_encoder":
        mask = np.zeros((1, 1, S, S), f32)
        a, b = int(S * 0.2), int(S * 0.75)
        mask[..., a:b, a + 3:b - 2] = 1.0
        return {"src_img": rng.uniform(0, 1, (1, 3, S, S)).astype(f32), "face_mask": mask}
    if role == "denoiser":
        cond = rng.standard_normal((1, size, 1032)).astype(f32)
        cond[..., 1024:1027] *= 5.0   # angle deltas in degrees
        cond[..., 1027] *= 1e-5       # scale delta
        cond[..., 1030:] *= 0.05      # eye ratio deltas
        return {"x_t": rng.standard_normal((1, 3, size, s, s)).astype(f32),
                "static": None,  # filled from the portrait encoder (end-to-end check)
                "timestep": np.array([float(rng.choice([952, 523, 47]))], f32),
                "cond": cond}
    if role == "decoder":
        lin = np.linspace(-1, 1, s, dtype=f32)
        grid = np.stack(np.meshgrid(lin, lin, indexing="xy"), -1)[None]       # x first
        flow = np.clip(grid + 0.05 * rng.standard_normal((size, s, s, 2)), -1, 1).astype(f32)
        return {"src_img": None, "skip0": None, "skip1": None, "feat": None,   # from the encoder
                "flow": flow, "occlusion": rng.uniform(0, 1, (size, 1, s, s)).astype(f32)}
    raise KeyError(role)


DYNAMIC = {
    "audio_encoder": ({"input_values": {1: "T"}}, {"last_hidden_state": {1: "Th"}}),
    "pbnet_pose": ({"z": {0: "N"}, "audio": {1: "N"}}, {"delta": {1: "N"}}),
    "pbnet_blink": ({"z": {0: "N"}, "audio": {1: "N"}}, {"delta": {1: "N"}}),
    "portrait_encoder": ({}, {}),
    "denoiser": ({"x_t": {2: "F"}, "cond": {1: "F"}}, {"eps": {2: "F"}}),
    "decoder": ({"flow": {0: "F"}, "occlusion": {0: "F"}}, {"frames": {0: "F"}}),
}
TRACE_SIZE = {"audio_encoder": 16080, "pbnet_pose": 50, "pbnet_blink": 50, "portrait_encoder": None,
              "denoiser": 24, "decoder": 3}
# fp16 tracing runs the model with the CPU's slow fp16 kernels: trace with fewer frames (the
# verification runs every graph at several sizes anyway)
TRACE_SIZE_FP16 = dict(TRACE_SIZE, denoiser=4, decoder=2)


# -------------------------------------------------------------------------------------- export

def declared_shapes(model):
    """{io name: dims} of an ONNX model's inputs and outputs as the trace declared them (int,
    dim_param string, or None when unknown)."""
    out = {}
    for vi in list(model.graph.input) + list(model.graph.output):
        if vi.type.tensor_type.HasField("shape"):
            out[vi.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                            for d in vi.type.tensor_type.shape.dim]
    return out


def _stamp_contract(model, role, resolution, cs):
    """Set the graph I/O dims exactly as the contract writes them (fixed values, symbolic names),
    after checking that the traced shapes agree with it (a 64-wide HuBERT must not leave as
    [1, Th, 1024])."""
    problems = C.shape_mismatches(role, resolution, cs, declared_shapes(model))
    if problems:
        raise SystemExit("the exported graph does not match the contract (nothing was stamped):\n  - "
                         + "\n  - ".join(problems))
    ins, outs = C.graph_io(role, resolution, cs=cs)
    want = dict(ins + outs)
    for vi in list(model.graph.input) + list(model.graph.output):
        dims = want.get(vi.name)
        if dims is None:
            continue
        shape = vi.type.tensor_type.shape
        while len(shape.dim) > len(dims):
            shape.dim.pop()
        while len(shape.dim) < len(dims):
            shape.dim.add()
        for d, w in zip(shape.dim, dims):
            if isinstance(w, str):
                d.Clear()
                d.dim_param = w
            else:
                d.Clear()
                d.dim_value = w


def export_graph(role, module, example, path, resolution, cs):
    import onnx
    import warnings

    in_dyn, out_dyn = DYNAMIC[role]
    ins, outs = C.graph_io(role, resolution, cs=cs)
    in_names, out_names = [n for n, _ in ins], [n for n, _ in outs]
    args = tuple(torch.from_numpy(example[n]) for n in in_names)
    tmp = path + ".tmp"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.no_grad():
            torch.onnx.export(module, args, tmp, dynamo=False, opset_version=OPSET,
                              input_names=in_names, output_names=out_names,
                              dynamic_axes={**in_dyn, **out_dyn}, do_constant_folding=True)
    model = onnx.load(tmp)
    if model.ir_version > IR_VERSION_MAX:
        model.ir_version = 8
    _stamp_contract(model, role, resolution, cs)
    onnx.save(model, path)
    os.remove(tmp)
    onnx.checker.check_model(path)
    return model.ir_version


# -------------------------------------------------------------------------------------- verify

def rel_err(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape:
        return float("inf"), float("inf")
    mab = float(np.max(np.abs(a - b))) if a.size else 0.0
    den = float(np.max(np.abs(b))) if b.size else 0.0
    return mab, (mab / den if den > 0 else (0.0 if mab == 0 else float("inf")))


class Verifier:
    def __init__(self, pack, refs, resolution, threads, bound, seed, cs=None):
        import onnxruntime as ort

        self.ort = ort
        self.cs = "Cs" if cs is None else cs  # static channels, when the caller knows them
        self.pack, self.refs, self.S = pack, refs, resolution
        self.threads, self.bound = threads, bound
        self.rng = _rng(seed + 1000)
        self.rows = []
        self.sessions = {}
        self._portrait = None

    def session(self, role):
        if role not in self.sessions:
            so = self.ort.SessionOptions()
            so.intra_op_num_threads = self.threads
            so.inter_op_num_threads = 1
            self.sessions[role] = self.ort.InferenceSession(
                os.path.join(self.pack, C.graph_file(role)), so, providers=["CPUExecutionProvider"])
        return self.sessions[role]

    def drop(self, role):
        self.sessions.pop(role, None)

    def run(self, role, feeds):
        sess = self.session(role)
        names = [o.name for o in sess.get_outputs()]
        return dict(zip(names, sess.run(None, feeds)))

    def record(self, role, sizes, got, ref, bound, axes=None):
        """One row: the worst output's error; a row fails too when an output's shape is not the
        contract's for these inputs (``axes``, e.g. {"T": 720}), whatever the reference says."""
        shapes = {name: list(np.shape(v)) for name, v in got.items()}
        wrong = C.shape_mismatches(role, self.S, self.cs, shapes, sizes=axes or {"_": 0})
        for w in wrong:
            log(f"  verify {role}: {w}")
        worst = (0.0, 0.0, "")
        for name, r in ref.items():
            r = r.detach().float().numpy() if torch.is_tensor(r) else r
            mab, rel = rel_err(got[name], r)
            if not np.all(np.isfinite(got[name])):
                mab = rel = float("inf")
            if rel >= worst[1]:
                worst = (mab, rel, name)
        if wrong:
            worst = (float("inf"), float("inf"), "shape")
        ok = worst[1] <= bound
        self.rows.append({"graph": role, "inputs": sizes, "output": worst[2], "max_abs_err": worst[0],
                          "rel_err": worst[1], "bound": bound, "pass": bool(ok),
                          **({"shape_errors": wrong} if wrong else {})})
        log(f"  verify {role:16s} {sizes:28s} {worst[2]:18s} abs {worst[0]:.3e} rel {worst[1]:.3e} "
            f"{'PASS' if ok else 'FAIL'}")
        return ok

    def portrait(self):
        if self._portrait is None:
            x = make_inputs("portrait_encoder", None, self.S, self.rng)
            got = self.run("portrait_encoder", x)
            ref, fea = self.refs.portrait(*(torch.from_numpy(x[n]) for n in ("src_img", "face_mask")))
            self._portrait = (x, got, ref, fea)
        return self._portrait

    def check(self, role, sizes):
        S, b = self.S, self.bound
        if role == "portrait_encoder":
            x, got, ref, _ = self.portrait()
            self.record(role, f"S={S}", got, ref, b)
            return
        for n in sizes:
            x = make_inputs(role, n, S, self.rng)
            if role == "audio_encoder":
                got = self.run(role, x)
                ref = self.refs.audio_encoder(torch.from_numpy(x["input_values"]))
                th = got["last_hidden_state"].shape[1]
                label = f"T={n} (Th={th})"
                axes = {"T": n}
            elif role in ("pbnet_pose", "pbnet_blink"):
                got = self.run(role, x)
                ref = self.refs.pbnet(role.split("_")[1], *(torch.from_numpy(x[k]) for k in ("init_state", "z", "audio")))
                label = f"N={n}"
                axes = {"N": n}
            elif role == "denoiser":
                px, pgot, _, fea = self.portrait()
                x["static"] = pgot["static"]
                got = self.run(role, x)
                ref = self.refs.denoiser(torch.from_numpy(x["x_t"]), fea, torch.from_numpy(x["timestep"]),
                                         torch.from_numpy(x["cond"]))
                label = f"F={n} t={int(x['timestep'][0])}"
                axes = {"F": n}
            elif role == "decoder":
                px, pgot, _, _ = self.portrait()
                x["src_img"] = px["src_img"]
                for k in ("skip0", "skip1", "feat"):
                    x[k] = pgot[k]
                got = self.run(role, x)
                ref = self.refs.decoder(torch.from_numpy(x["src_img"]), torch.from_numpy(x["flow"]),
                                        torch.from_numpy(x["occlusion"]))
                label = f"F={n}"
                axes = {"F": n}
            self.record(role, label, got, ref, b, axes)

    def table(self):
        head = "| graph | inputs | worst output | max abs err | rel err | bound | pass |\n|---|---|---|---|---|---|---|"
        lines = [head]
        for r in self.rows:
            lines.append(f"| {r['graph']} | {r['inputs']} | {r['output']} | {r['max_abs_err']:.3e} | "
                         f"{r['rel_err']:.3e} | {r['bound']:.0e} | {'PASS' if r['pass'] else 'FAIL'} |")
        return "\n".join(lines)


VERIFY_SIZES = {
    "audio_encoder": [400, 720, 6480, 32080],
    "pbnet_pose": [1, 7, 50, 250],
    "pbnet_blink": [1, 7, 50, 250],
    "portrait_encoder": [None],
    "decoder": [1, 3, 7],
}

FP16_BOUND = 2e-2  # documented in docs/exporter.md (measured here: <= 3e-3)


def run(args):
    t_start = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    dtype = torch.float16 if args.fp16 else torch.float32
    roles = args.only or list(C.ROLES)

    fd, pbnets, hubert, files = build_networks(args)
    os.makedirs(args.out, exist_ok=True)
    cs = int(fd.unet.init_conv.out_channels)
    mods = G.make_export_modules(fd, pbnets, hubert, dtype=dtype, attention=args.attention,
                                 band_block=args.band_block, window=C.ATTENTION_WINDOW, roles=roles)
    refs = G.References(fd, pbnets, hubert)
    timings = {}
    rng = _rng(args.seed)
    for role in roles:
        ex = make_inputs(role, (TRACE_SIZE_FP16 if args.fp16 else TRACE_SIZE)[role], args.resolution, rng)
        # inputs filled from other graphs in verification: any values of the right shape do here
        S, s = args.resolution, args.resolution // 4
        fill = {"static": (1, cs, s, s), "src_img": (1, 3, S, S), "skip0": (1, 64, S, S),
                "skip1": (1, 128, S // 2, S // 2), "feat": (1, 256, s, s)}
        for k, v in list(ex.items()):
            if v is None:
                ex[k] = rng.standard_normal(fill[k]).astype(np.float32)
        path = os.path.join(args.out, C.graph_file(role))
        t0 = time.time()
        log(f"exporting {role} -> {path}")
        ir = export_graph(role, mods[role], ex, path, args.resolution, cs)
        timings[role] = {"export_s": round(time.time() - t0, 1), "bytes": os.path.getsize(path)}
        log(f"  {role}: {timings[role]['bytes'] / 2**20:.1f} MiB, IR {ir}, opset {OPSET}, "
            f"{timings[role]['export_s']}s")
        mods[role] = None  # free the copy

    # signature check against the contract (same rules as the engine)
    sig_problems = []
    for role in roles:
        g = SIG.graph_signature(os.path.join(args.out, C.graph_file(role)))
        sig_problems += SIG.check_contract({"resolution": args.resolution,
                                            "graphs": {r: (g if r == role else None) for r in [role]}})
    sig_problems = [p for p in sig_problems if "missing graph" not in p]
    if sig_problems:
        raise SystemExit("exported graphs do not match the contract:\n  - " + "\n  - ".join(sig_problems))

    verification = None
    if not args.no_verify:
        bound = FP16_BOUND if args.fp16 else 1e-3
        log(f"verifying against PyTorch (fp32 eager upstream), bound rel err <= {bound:g}")
        v = Verifier(args.out, refs, args.resolution, args.threads, bound, args.seed, cs=cs)
        sizes = dict(VERIFY_SIZES)
        sizes["denoiser"] = args.verify_frames
        order = [r for r in ("portrait_encoder", "denoiser", "decoder", "pbnet_pose", "pbnet_blink",
                             "audio_encoder") if r in roles]
        needs_portrait = any(r in roles for r in ("denoiser", "decoder"))
        if needs_portrait and "portrait_encoder" not in roles:
            raise SystemExit("--only with denoiser/decoder needs portrait_encoder too (end-to-end check)")
        for role in order:
            t0 = time.time()
            v.check(role, sizes[role])
            timings[role]["verify_s"] = round(time.time() - t0, 1)
            if role not in ("portrait_encoder",):
                v.drop(role)
        log("\n" + v.table())
        verification = {"bound": bound, "rows": v.rows, "all_pass": all(r["pass"] for r in v.rows),
                        "runtime": f"onnxruntime CPU EP vs torch {torch.__version__} CPU"}

    if set(roles) == set(C.ROLES):
        hub = {}
        for key, f in files.items():
            if key.startswith("hubert"):
                name = "hubert/" + os.path.basename(f)
            else:
                name = os.path.relpath(f, args.checkpoints).replace(os.sep, "/")
            hub[name] = P.sha256_file(f)
        notes = [FACE_LOC_NOTE]
        if args.random_weights:
            notes.insert(0, "RANDOM WEIGHTS: for tests and timing only; produces no meaningful video.")
        if args.attention == "banded":
            notes.append(f"denoiser temporal attention: exact block-banded (B={args.band_block}).")
        extra = {
            "attention": args.attention,
            "static_channels": cs,
            "static_layout": "init_conv folded (feat ⊕ face_emb through init_conv[:, 3:], bias included)",
            "face_loc_encoder": {
                "source": f"reproduced: torch.manual_seed({U.FACE_LOC_SEED}) + FlowDiffusion construction "
                          f"(torch {torch.__version__}, CPU)",
                "sha256": face_loc_digest(fd.face_loc_emb),
            },
            "exporter": {"torch": torch.__version__, "opset": OPSET, "python": platform.python_version(),
                         "seed": args.seed, "upstream_stubs": list(U.stubbed)},
            "timings_s": timings,
        }
        if args.attention == "banded":
            extra["band_block"] = args.band_block
        if verification is not None:
            extra["verification"] = {"bound": verification["bound"], "all_pass": verification["all_pass"],
                                     "max_rel_err": max(r["rel_err"] for r in verification["rows"]),
                                     "runtime": verification["runtime"]}
        man = M.build_manifest(args.resolution, "fp16" if args.fp16 else "fp32",
                               "random" if args.random_weights else "trained", checkpoints=hub,
                               source=P.source_string(args.dawn_src), notes=" ".join(notes),
                               extra_provenance=extra)
        problems = M.validate_manifest(man, args.out)
        if problems:
            raise SystemExit("manifest does not validate:\n  - " + "\n  - ".join(problems))
        M.write_manifest(args.out, man)
        if verification is not None:
            with open(os.path.join(args.out, "verification.json"), "w", encoding="utf-8") as f:
                json.dump(verification, f, indent=1)
        log(f"wrote {os.path.join(args.out, 'manifest.json')}")
    else:
        log("--only: manifest not written (needs all six graphs)")
    total = time.time() - t_start
    log(f"done in {total / 60:.1f} min")
    if verification is not None and not verification["all_pass"]:
        log("VERIFICATION FAILED")
        return 1
    return 0
