"""The GPU check up to the hand-over (tools/gpu-check): the parts fit a call and reassemble to
the staged checksums, the CUDA library pruning keeps every header and the kept architecture,
packs survive the trip without their weights, and a dry run of the GPU side on this CPU (tiny
pack, CPU provider, the payload reassembled from parts in a scratch folder laid out as on the
GPU machine) produces every figure line.

Run:  .venv/bin/python -m unittest tools.tests.test_gpu_check
The dry run needs `cargo build --example bench` (tools/test.sh runs cargo test first, which
builds it) and the CPU ONNX Runtime from tools/setup.sh.
"""

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "gpu-check"))

import fatbin  # noqa: E402
import parts  # noqa: E402
import remote  # noqa: E402
import sharedlibs  # noqa: E402
import stage  # noqa: E402

MIB = 1 << 20


def fake_cuda_library(containers):
    """A minimal ELF64 with a `.nv_fatbin` section holding `containers`: lists of
    (kind, arch, payload bytes)."""
    fat = bytearray()
    for entries in containers:
        body = bytearray()
        for kind, arch, payload in entries:
            padded = (len(payload) + 7) // 8 * 8
            body += struct.pack("<HHIIIIIII", kind, 0x0101, 64, padded, 0, len(payload), 0, 0, arch)
            body += bytes(64 - 32)
            body += payload + bytes(padded - len(payload))
        fat += struct.pack("<IHHQ", fatbin.MAGIC, 1, 16, len(body)) + body
    names = b"\0.nv_fatbin\0.shstrtab\0"
    fat_off = 64
    str_off = fat_off + len(fat)
    sh_off = (str_off + len(names) + 7) // 8 * 8
    elf = bytearray(b"\x7fELF" + bytes([2, 1, 1]) + bytes(9))
    elf += struct.pack("<HHIQQQIHHHHHH", 3, 62, 1, 0, 0, sh_off, 0, 64, 0, 0, 64, 3, 2)
    elf += fat + names + bytes(sh_off - str_off - len(names))

    def sh(name, typ, off, size):
        return struct.pack("<IIQQQQIIQQ", name, typ, 0, 0, off, size, 0, 0, 1, 0)

    elf += sh(0, 0, 0, 0) + sh(1, 1, fat_off, len(fat)) + sh(12, 3, str_off, len(names))
    return bytes(elf)


class FatbinTest(unittest.TestCase):
    def test_other_architectures_are_zeroed_and_everything_else_kept(self):
        sm80, sm90, sm120 = b"\x11" * 100, b"\x22" * 50, b"\x33" * 30
        lib = fake_cuda_library([[(2, 80, sm80), (2, 90, sm90)], [(2, 120, sm120)]])
        pruned, zeroed = fatbin.prune(lib, 90)
        self.assertEqual(len(pruned), len(lib), "the library must keep its size and layout")
        self.assertEqual(zeroed, 104)
        self.assertNotIn(sm80, pruned)
        self.assertIn(sm90, pruned)
        # A container without sm_90 code is left as it was.
        self.assertIn(sm120, pruned)
        # Every header survives: the same entries are found in the pruned file.
        off, size = fatbin.fatbin_section(pruned)
        self.assertEqual(
            [(k, a) for _, _, _, _, k, a in fatbin.entries(pruned, off, size)],
            [(2, 80), (2, 90), (2, 120)])

    def test_not_a_cuda_library_is_an_error(self):
        with self.assertRaises(fatbin.FatbinError):
            fatbin.fatbin_section(b"not an elf")


class PartsTest(unittest.TestCase):
    def test_parts_fit_and_reassemble_to_the_same_checksum(self):
        with tempfile.TemporaryDirectory() as d:
            blob = os.urandom(3 * MIB + 12345)
            archive = os.path.join(d, "payload.tar.xz")
            Path(archive).write_bytes(blob)
            m = parts.split(archive, os.path.join(d, "stage"), MIB)
            self.assertEqual(len(m["parts"]), 4)
            sizes = [p["size"] for p in m["parts"]]
            self.assertLessEqual(max(sizes) - min(sizes), 3, "parts are balanced")
            for p in m["parts"]:
                self.assertLessEqual(os.path.getsize(os.path.join(d, "stage", p["call"], p["name"])), MIB)
            work = os.path.join(d, "work")
            for i in range(1, 4):
                self.assertEqual(len(parts.receive(os.path.join(d, "stage", f"call{i}"), work)), 4 - i)
            with self.assertRaises(parts.PartsError) as e:
                parts.join(work, os.path.join(d, "joined"))
            self.assertIn("call4", str(e.exception), "a missing part must name the call that carries it")
            self.assertEqual(parts.receive(os.path.join(d, "stage", "call4"), work), [])
            got = parts.join(work, os.path.join(d, "joined"))
            self.assertEqual(hashlib.sha256(Path(d, "joined").read_bytes()).hexdigest(),
                             hashlib.sha256(blob).hexdigest())
            self.assertEqual(got["sha256"], hashlib.sha256(blob).hexdigest())

    def test_a_damaged_part_is_refused(self):
        with tempfile.TemporaryDirectory() as d:
            archive = os.path.join(d, "a")
            Path(archive).write_bytes(os.urandom(2 * MIB))
            parts.split(archive, os.path.join(d, "stage"), MIB)
            part = Path(d, "stage", "call2", "part02")
            data = bytearray(part.read_bytes())
            data[100] ^= 1
            part.write_bytes(bytes(data))
            with self.assertRaises(parts.PartsError):
                parts.receive(os.path.join(d, "stage", "call2"), os.path.join(d, "work"))

    def test_budget_leaves_room_for_the_working_tree(self):
        self.assertEqual(parts.budget(8 * MIB), 54 * MIB)
        with self.assertRaises(parts.PartsError):
            parts.budget(63 * MIB)


class WeightsTest(unittest.TestCase):
    def test_packs_travel_without_weights_and_come_back_complete(self):
        import onnx
        import weights
        tiny = ROOT / "tests" / "models" / "tiny128"
        with tempfile.TemporaryDirectory() as d:
            twin = Path(d, "twin")
            shutil.copytree(tiny, twin)
            store = os.path.join(d, "store")
            index = weights.strip_packs([str(tiny), str(twin)], store)
            graphs = os.listdir(os.path.join(store, "graphs"))
            self.assertEqual(len(graphs), 2 * 6, "identical graphs of two packs are stored once")
            stored = sum(os.path.getsize(os.path.join(store, "graphs", g)) for g in graphs)
            original = sum(f.stat().st_size for f in tiny.glob("*.onnx"))
            self.assertLess(stored, original / 2)
            weights.fill_packs(store, os.path.join(d, "packs"), ["tiny128"])
            for f in tiny.glob("*.onnx"):
                a = onnx.load(str(f))
                b = onnx.load(os.path.join(d, "packs", "tiny128", f.name))
                onnx.checker.check_model(b)
                self.assertEqual([i.name for i in a.graph.input], [i.name for i in b.graph.input])
                shapes = lambda m: sorted((t.name, tuple(t.dims), t.data_type) for t in m.graph.initializer)
                self.assertEqual(shapes(a), shapes(b), f"{f.name}: initializers differ after the trip")
            self.assertEqual(index["tiny128"]["manifest.json"], {"copy": "files/tiny128/manifest.json"})


class SharedLibsTest(unittest.TestCase):
    def test_unresolved_libraries_are_found_from_the_elf_headers(self):
        gst = "/usr/lib/x86_64-linux-gnu/libgstreamer-1.0.so.0"
        self.assertTrue(os.path.exists(gst), f"{gst} missing: run tools/setup.sh")
        with tempfile.TemporaryDirectory() as empty:
            lost = {s for _, s in sharedlibs.unresolved([gst], [empty])}
            self.assertIn("libglib-2.0.so.0", lost)
            self.assertNotIn("libc.so.6", lost, "the C runtime is the target system's")
        self.assertEqual(sharedlibs.unresolved([gst], ["/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu"]), [])


RUN_FIGURES = {
    "load_s", "warmup_s", "gpu_mem_start_mib", "rtf", "engine_rtf", "fps", "first_frame_s",
    "first_chunk_compute_s", "audio_wait_s", "audio_to_frame_p50_s", "audio_to_frame_p95_s",
    "audio_to_frame_max_s", "wait_per_chunk_ms", "gpu_mem_end_mib", "peak_rss_mib", "cpu_nodes",
    "gpu_mem_before_load_mib",
}


class DryRunTest(unittest.TestCase):
    """The GPU side against the CPU build, in a scratch folder laid out as the GPU machine's."""

    def test_dry_run_produces_every_figure(self):
        bench = ROOT / "target" / "debug" / "examples" / "bench"
        plugin = ROOT / "target" / "debug" / "libgstdawn.so"
        ort = ROOT / ".ort" / "onnxruntime" / "capi" / "libonnxruntime.so.1.31.1"
        for f, fix in ((bench, "cargo build --example bench"), (plugin, "cargo build"),
                       (ort, "tools/setup.sh")):
            self.assertTrue(f.exists(), f"{f} missing; fix: {fix}")
        with tempfile.TemporaryDirectory() as d:
            payload = Path(d, "payload")
            (payload / "ort").mkdir(parents=True)
            shutil.copyfile(ort, payload / "ort" / ort.name)
            # The plugin stays outside the payload (a debug build is large): a folder of its own.
            Path(d, "plugin").mkdir()
            os.symlink(plugin, Path(d, "plugin", plugin.name))
            import weights
            weights.strip_packs([str(ROOT / "tests" / "models" / "tiny128")], str(payload / "packs-store"))
            stage.write_checksums(str(payload))
            archive = os.path.join(d, "stage", stage.ARCHIVE)
            os.makedirs(os.path.dirname(archive))
            stage.archive(str(payload), archive, "0")
            m = parts.split(archive, os.path.join(d, "stage"), 4 * MIB)
            self.assertGreater(len(m["parts"]), 1, "the dry run must go through several calls")
            work, out = os.path.join(d, "work"), os.path.join(d, "out")
            calls = sorted({p["call"] for p in m["parts"]})
            common = ["--work", work, "--out", out, "--provider", "cpu", "--bench", str(bench),
                      "--plan", str(ROOT / "tools" / "gpu-check" / "plan-dry.json"), "--system-gst",
                      "--plugin-dir", os.path.join(d, "plugin"),
                      "--deadline-s", "300"]
            for c in calls[:-1]:
                self.assertEqual(self._remote(["call", os.path.join(d, "stage", c), *common]), 0)
                self.assertFalse(Path(out, "figures.jsonl").exists(), "nothing runs before the last part")
            self.assertEqual(self._remote(["call", os.path.join(d, "stage", calls[-1]), *common]), 0,
                             Path(out, "summary.txt").read_text() if Path(out, "summary.txt").exists() else "")
            self._check_figures(Path(out, "figures.jsonl"))

    def _remote(self, args):
        r = subprocess.run([sys.executable, str(ROOT / "tools" / "gpu-check" / "remote.py"), *args],
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            print(r.stdout[-3000:], r.stderr[-3000:])
        return r.returncode

    def _check_figures(self, path):
        lines = path.read_text().splitlines()
        self.assertTrue(all(l.startswith("FIGURE {") for l in lines))
        figs = [json.loads(l[len("FIGURE "):]) for l in lines]
        by_run = {}
        for f in figs:
            if f["name"] in RUN_FIGURES:
                key = (f.get("chunk"), f.get("streams"))
                by_run.setdefault(key, set()).add(f["name"])
        runs = {k: v for k, v in by_run.items() if k[1] is not None}
        # tiny128 at 16+16+8 with 1 and 2 streams, and 4+16+2 with one.
        self.assertEqual(sorted(runs), [("16+16+8", 1), ("16+16+8", 2), ("4+16+2", 1)])
        per_load = {"load_s", "warmup_s", "gpu_mem_start_mib", "cpu_nodes", "peak_rss_mib"}
        per_stream = RUN_FIGURES - per_load - {"gpu_mem_before_load_mib"}
        for key, names in runs.items():
            self.assertTrue(per_stream <= names, f"{key}: missing {sorted(per_stream - names)}")
        for chunk in ("16+16+8", "4+16+2"):
            self.assertTrue(per_load <= by_run.get((chunk, None), set()), f"{chunk}: missing load figures")
        value = {}
        for f in figs:
            value.setdefault((f["name"], f.get("chunk"), f.get("streams")), f)
        for key in runs:
            for name in ("rtf", "fps", "first_frame_s", "audio_to_frame_p50_s", "audio_to_frame_max_s"):
                v = value[(name, *key)]["value"]
                self.assertIsInstance(v, (int, float), f"{name} {key}")
                self.assertGreater(v, 0, f"{name} {key}")
            ff, wait = value[("first_frame_s", *key)]["value"], value[("audio_wait_s", *key)]["value"]
            self.assertGreaterEqual(ff, wait, "no frame can come before its audio")
            gpu = value[("gpu_mem_end_mib", *key)]
            self.assertIsNone(gpu["value"])
            self.assertIn("nvidia-smi", gpu["why"], "an unmeasured figure says why")
        placement = [f for f in figs if f["name"] == "cpu_nodes"]
        self.assertEqual(len({f["graph"] for f in placement}), 6, "a placement line per graph")
        for f in placement:
            self.assertEqual(f["value"], f["total_nodes"], "on the CPU provider every node is on the CPU")
        element = [f for f in figs if f["name"] == "element_pipeline_s"]
        self.assertEqual(len(element), 1)
        self.assertIsInstance(element[0]["value"], float, element[0].get("why"))
        for name in ("gpu_mem_peak_mib", "bench_wall_s", "refill_s", "gpu_check_s"):
            self.assertIn(name, {f["name"] for f in figs})


if __name__ == "__main__":
    unittest.main()
