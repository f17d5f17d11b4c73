"""tools/bench: the side-by-side driver's own logic (no torch, no GStreamer needed)."""

import json
import re
import os
import sys
import tempfile
import time
import unittest
import wave

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tools.bench import side_by_side as S
from tools.bench import torch_ref as T  # module level is torch-free


def write_wav(path, seconds, rate=16000, channels=1):
    n = int(seconds * rate)
    with wave.open(path, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(2 * channels * n))
    return n


class ParsingTest(unittest.TestCase):
    def test_tagged_json_takes_last_valid_line(self):
        text = ("noise\nSUMMARY {\"frames\": 1}\n\r[###] progress\nSUMMARY {broken\n"
                "SUMMARY {\"frames\": 200, \"wall_s\": 1.5}\n")
        self.assertEqual(S.parse_tagged_json(text, "SUMMARY"), {"frames": 200, "wall_s": 1.5})
        self.assertIsNone(S.parse_tagged_json("nothing", "SUMMARY"))
        # another tag sharing the prefix is not mistaken for it
        self.assertIsNone(S.parse_tagged_json("TORCH_SUMMARY {\"a\": 1}", "SUMMARY"))

    def test_render_summary_line_parses(self):
        # the exact format examples/render.rs prints
        line = ('SUMMARY {"frames": 25, "wall_s": 28.257, "audio_ms": 271.1, "pbnet_ms": 3.7, '
                '"denoiser_ms": 4775.1, "decoder_ms": 5148.5, "host_ms": 1.4, "engine_total_ms": 10199.7, '
                '"peak_rss_mib": 3123}')
        d = S.parse_tagged_json("x\n" + line + "\n", "SUMMARY")
        self.assertEqual(d["frames"], 25)
        self.assertAlmostEqual(d["engine_total_ms"], 10199.7)

    def test_parse_set(self):
        self.assertEqual(S.parse_set(["a=1", " b = x=y "]), [("a", "1"), ("b", "x=y")])
        self.assertEqual(S.parse_set(None), [])
        with self.assertRaises(ValueError):
            S.parse_set(["novalue"])
        with self.assertRaises(ValueError):
            S.parse_set(["=3"])

    def test_merge_props_later_wins_order_kept(self):
        got = S.merge_props([("execution-provider", "cpu"), ("sampling-steps", "20")],
                            [("chunk-frames", "200")], [("sampling-steps", "10")])
        self.assertEqual(got, [("execution-provider", "cpu"), ("sampling-steps", "10"), ("chunk-frames", "200")])

    def test_variants(self):
        self.assertEqual(S.variant_props("default", 200), [])
        self.assertEqual(dict(S.variant_props("one-pass", 200)),
                         {"chunk-frames": "200", "context-frames": "0", "lookahead-frames": "0"})
        with self.assertRaises(ValueError):
            S.variant_props("other", 1)

    def test_frames_rule(self):
        self.assertEqual(S.frames_for_samples(128000, 16000), 200)   # 8 s
        self.assertEqual(S.frames_for_samples(128639, 16000), 200)
        self.assertEqual(S.frames_for_samples(128640, 16000), 201)
        self.assertEqual(S.frames_for_samples(384000, 48000), 200)   # rate independent
        self.assertEqual(S.frames_for_samples(639, 16000), 0)
        # upstream's float arithmetic loses a frame here (200.99999999999997)
        self.assertEqual(S.upstream_frames_for_samples(128640, 16000), 200)
        self.assertEqual(S.upstream_frames_for_samples(128000, 16000), 200)
        self.assertEqual(S.upstream_frames_for_samples(51200, 16000), 80)


class AudioTest(unittest.TestCase):
    def test_cut_wav(self):
        with tempfile.TemporaryDirectory() as d:
            src, dst = os.path.join(d, "a.wav"), os.path.join(d, "b.wav")
            write_wav(src, 2.0, rate=16000, channels=2)
            self.assertEqual(S.cut_wav(src, dst, 1.25), (20000, 16000, 2))
            with wave.open(dst, "rb") as w:
                self.assertEqual((w.getnframes(), w.getframerate(), w.getnchannels(), w.getsampwidth()),
                                 (20000, 16000, 2, 2))
            with self.assertRaises(ValueError):
                S.cut_wav(src, dst, 3.0)


class MachineTest(unittest.TestCase):
    def test_cpu_and_memory(self):
        self.assertEqual(S.cpu_model("processor\t: 0\nmodel name\t: AMD EPYC 7B13\n"), "AMD EPYC 7B13")
        self.assertEqual(S.cpu_model(""), "unknown")
        self.assertEqual(S.meminfo_mib("MemTotal:       24685000 kB\nMemFree: 1 kB\n"), 24106)
        self.assertIsNone(S.meminfo_mib("MemFree: 1 kB\n"))

    def test_ort_version(self):
        self.assertEqual(S.ort_version_from_path("/x/capi/libonnxruntime.so.1.31.1"), "1.31.1")
        self.assertIsNone(S.ort_version_from_path("/x/libonnxruntime.so"))
        self.assertIsNone(S.ort_version_from_path(None))

    def test_ort_version_comes_from_cargo_toml(self):
        import subprocess
        version = subprocess.run(["bash", os.path.join(ROOT, "tools", "ort-version.sh")],
                                 capture_output=True, text=True, check=True).stdout.strip()
        self.assertRegex(version, r"^\d+\.\d+\.\d+$")
        self.assertEqual(S.ort_version(), version)
        self.assertEqual(S.ort_version_from_path(S.DEFAULT_ORT), version)

    def test_torch_python_is_required_for_the_torch_side(self):
        saved = os.environ.pop(S.TORCH_PYTHON_ENV, None)
        try:
            parser = S.build_parser()
            args = ["--dawn-src", "d", "--pack", "p"]
            self.assertIsNone(parser.parse_args(args).torch_python)
            with self.assertRaises(SystemExit) as cm:
                S.main(args)
            self.assertIn("--torch-python", str(cm.exception))
            os.environ[S.TORCH_PYTHON_ENV] = "/opt/torch/bin/python"
            self.assertEqual(S.build_parser().parse_args(args).torch_python, "/opt/torch/bin/python")
        finally:
            os.environ.pop(S.TORCH_PYTHON_ENV, None)
            if saved is not None:
                os.environ[S.TORCH_PYTHON_ENV] = saved

    def test_machine_info_keys(self):
        m = S.machine_info("/nope/libonnxruntime.so.1.2.3")
        for k in ("cpu", "usable_cpus", "ram_mib", "kernel", "onnxruntime_ours"):
            self.assertIn(k, m)
        self.assertEqual(m["onnxruntime_ours"], "1.2.3")

    def test_heavy_pattern_uses_command_head(self):
        import re
        rx = re.compile(S.HEAVY_PATTERN)
        heavy = ["/home/u/.cargo/bin/cargo build --release", "/x/rustc --crate-name gstdawn src/lib.rs",
                 "/opt/venv-export/bin/python -W ignore -m tools.export --dawn-src d",
                 "/src/gst-dawn/target/release/examples/render --image a",
                 "/src/gst-dawn/target/release/deps/bench-82813755a6f2b771 --model p"]
        light = ['line_io_tools/binary_backend --uid 0 --env {"PATH": "/home/u/.cargo/bin:/usr/bin"}',
                 "/usr/bin/bash -c sleep 1", "/usr/bin/python3 -m http.server"]
        for c in heavy:
            self.assertTrue(rx.search(S.command_head(c)), c)
        for c in light:
            self.assertFalse(rx.search(S.command_head(c)), c)
        self.assertEqual(S.command_head(""), "")

    def test_busy_pids(self):
        hz = os.sysconf("SC_CLK_TCK")
        before = {1: (0, "a"), 2: (0, "b"), 3: (0, "c")}
        after = {1: (hz, "a"), 2: (hz // 10, "b"), 3: (hz, "reused"), 4: (hz, "new")}
        self.assertEqual(S.busy_pids(before, after, 1.0), [1])

    def test_own_tree_contains_self(self):
        self.assertIn(os.getpid(), S.own_tree(os.getpid()))

    def test_wait_idle_returns_without_waiting(self):
        t0 = time.monotonic()
        idle, waited, what = S.wait_idle(0, load_max=1e9, pattern=r"^$no-such-process", sample_s=0)
        self.assertTrue(idle)
        self.assertEqual(waited, 0)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertIn("loadavg", what)

    def test_cpu_monitor_excludes_own_children(self):
        with tempfile.TemporaryDirectory() as d:
            with S.CpuMonitor(interval_s=0.2) as mon:
                S.run_child([sys.executable, "-c", "import time\nt=time.time()\nwhile time.time()-t<0.8: pass"],
                            d, dict(os.environ), os.path.join(d, "log"))
            rep = mon.report(1.0)
        self.assertIn("other_cpu_s", rep)
        self.assertFalse(any("while time.time()" in e["cmd"] for e in rep["top_others"]))


class ChildTest(unittest.TestCase):
    def test_measured_run_aborts_contended_attempt_then_reports(self):
        import argparse
        import subprocess
        # a CPU hog outside this process tree (double fork: reparented away from us)
        hog = ("import os, time\n"
               "if os.fork() == 0:\n"
               "    t = time.time()\n"
               "    while time.time() - t < 6: pass\n")
        subprocess.run([sys.executable, "-c", hog], check=True)
        opt = argparse.Namespace(retries=1, wait_idle=0, idle_load=1e9, idle_settle=0, abort_share=0.3,
                                 verbose=False, monitor_interval=0.25, abort_window=1.0)
        with tempfile.TemporaryDirectory() as d:
            log = os.path.join(d, "run.log")
            rc, wall, rss, out, facts = S.measured_run(
                [sys.executable, "-c", "import time; time.sleep(2.5); print('done')"], d, dict(os.environ),
                log, opt, log=lambda m: None)
            self.assertEqual(rc, 0)
            self.assertIn("done", out)
            self.assertEqual(len(facts["aborted_attempts"]), 1)
            self.assertTrue(os.path.exists(log + ".aborted1"))
            self.assertGreater(facts["others"]["other_cpu_s"], 0.5)  # the last attempt reports it

    def test_run_child_rc_output_rss(self):
        with tempfile.TemporaryDirectory() as d:
            log = os.path.join(d, "child.log")
            code = "import sys; b = bytearray(64 << 20); print('TAG {\"x\": 1}'); sys.exit(3)"
            rc, wall, rss, out = S.run_child([sys.executable, "-c", code], d, dict(os.environ), log)
            self.assertEqual(rc, 3)
            self.assertGreater(wall, 0)
            self.assertGreater(rss, 60)  # the 64 MiB buffer counts in the child's own peak
            self.assertEqual(S.parse_tagged_json(out, "TAG"), {"x": 1})
            with open(log, encoding="utf-8") as f:
                self.assertIn("TAG", f.read())


TORCH = {"frames": 200, "stages_s": {"audio": 10.0, "pbnet": 1.0, "portrait": 0.5, "diffusion": 1000.0,
                                      "decoder": 100.0, "output": 0.5},
         "unet_s": 990.0, "inference_s": 1112.0, "setup_s": 20.0, "process_wall_s": 1140.0,
         "peak_rss_mib": 9000.0, "peak_rss_inference_mib": 8800.0}
OURS = {"frames": 200, "wall_s": 600.0, "audio_ms": 5000.0, "pbnet_ms": 500.0, "denoiser_ms": 495000.0,
        "decoder_ms": 50000.0, "host_ms": 11000.0, "engine_total_ms": 556000.0, "peak_rss_mib": 4500,
        "process_wall_s": 610.0}


class CompareTest(unittest.TestCase):
    def test_rows_and_ratios(self):
        rows = {r[0]: r for r in S.compare_rows(TORCH, OURS)}
        self.assertEqual(rows["frames"][1:3], (200, 200))
        self.assertEqual(rows["denoiser (U-Net calls)"][1:3], (990.0, 495.0))
        self.assertAlmostEqual(S.ratio(rows["denoiser (U-Net calls)"][2], rows["denoiser (U-Net calls)"][1]), 0.5)
        # torch host = sampler arithmetic (diffusion - unet) + portrait glue + uint8 output
        self.assertAlmostEqual(rows["host / glue (sampler, tensors, uint8)"][1], 10.0 + 0.5 + 0.5)
        self.assertAlmostEqual(rows["inference total"][2], 556.0)
        self.assertEqual(rows["peak RSS, whole process"][1:3], (9000.0, 4500))

    def test_one_side_missing(self):
        rows = S.compare_rows(None, OURS)
        self.assertTrue(all(r[1] is None for r in rows))
        rows = S.compare_rows(TORCH, None)
        self.assertTrue(all(r[2] is None for r in rows))
        text = S.table(rows)
        self.assertIn("denoiser", text)
        self.assertNotIn("None", text)

    def test_ratio_edge_cases(self):
        self.assertIsNone(S.ratio(None, 1.0))
        self.assertIsNone(S.ratio(1.0, 0))
        self.assertAlmostEqual(S.ratio(1.0, 4.0), 0.25)

    def test_table_format(self):
        text = S.table(S.compare_rows(TORCH, OURS), "ours:default")
        lines = text.splitlines()
        self.assertTrue(lines[0].startswith("stage"))
        self.assertIn("ours:default", lines[0])
        self.assertEqual(len({len(line) for line in lines[:2]}), 1)
        self.assertIn("0.500", text)   # denoiser ratio
        self.assertIn("9,000", text)   # MiB formatting


class PackTest(unittest.TestCase):
    def test_pack_facts_both_manifest_forms(self):
        base = {"name": "n", "resolution": 128,
                "provenance": {"weights": "random", "precision": "fp32", "attention": "dense",
                               "exporter": {"seed": 7, "torch": "2.15.0"}}}
        old = json.loads(json.dumps(base))
        old["provenance"]["face_loc_encoder"] = "reproduced: ..."
        new = json.loads(json.dumps(base))
        new["provenance"]["face_loc_encoder"] = {"source": "x", "sha256": "sha256:ab"}
        self.assertIsNone(S.pack_facts(old)["face_loc_sha256"])
        self.assertEqual(S.pack_facts(new)["face_loc_sha256"], "sha256:ab")
        self.assertEqual(S.pack_facts(new)["seed"], 7)
        self.assertEqual(S.pack_facts({"provenance": {}})["attention"], "dense")

    def test_parser_defaults(self):
        a = S.build_parser().parse_args(["--dawn-src", "d", "--pack", "p"])
        self.assertEqual((a.seconds, a.steps, a.ours_variant, a.ours_set), (8.0, 20, None, []))
        a = S.build_parser().parse_args(["--dawn-src", "d", "--pack", "p", "--ours-variant", "one-pass",
                                         "--ours-set", "decoder-batch=8"])
        self.assertEqual((a.ours_variant, a.ours_set), (["one-pass"], ["decoder-batch=8"]))
        self.assertIsNone(a.ours_path)  # main() takes gst-launch, the user's path
        a = S.build_parser().parse_args(["--dawn-src", "d", "--pack", "p", "--ours-path", "render",
                                         "--ours-path", "gst-launch"])
        self.assertEqual(a.ours_path, ["render", "gst-launch"])

    def test_gst_launch_command_is_the_users_pipeline(self):
        cmd = S.gst_launch_command("c.wav", "/i.png", "/pack", [("sampling-steps", "20")], "/o.i420")
        self.assertEqual(cmd[0], "gst-launch-1.0")
        text = " ".join(cmd)
        self.assertIn("filesrc location=c.wav ! decodebin ! audioconvert ! audioresample ! "
                      "audio/x-raw,format=F32LE,rate=16000,channels=1 ! dawnavatar model-path=/pack "
                      "image=/i.png sampling-steps=20 ! videoconvert", text)
        self.assertTrue(text.endswith("filesink location=/o.i420"))
        self.assertIsNotNone(re.match(S.HEAVY_PATTERN, "gst-launch-1.0 -q filesrc"))

    def test_i420_frames(self):
        with tempfile.NamedTemporaryFile() as f:
            f.write(b"\0" * (128 * 128 * 3 // 2 * 7 + 5))
            f.flush()
            self.assertEqual(S.i420_frames(f.name, 128), 7)


class TorchRefHelpersTest(unittest.TestCase):
    def test_args(self):
        a = T.parse_args(["run", "--dawn-src", "d", "--resolution", "256", "--audio", "a", "--image", "i"])
        self.assertEqual((a.mode, a.resolution, a.steps, a.seed), ("run", 256, 20, 0))

    def test_status_fields(self):
        self.assertGreater(T.proc_status_kib("VmRSS"), 0)
        self.assertIsNone(T.proc_status_kib("NoSuchField"))
        self.assertEqual(T.mib(2048), 2.0)
        self.assertIsNone(T.mib(None))

    def test_marks(self):
        m = T.Marks()
        f = m.wrap("x", lambda v: v * 2)
        self.assertEqual(f(3), 6)
        self.assertEqual(f(4), 8)
        self.assertEqual(m.count("x"), 2)
        self.assertGreaterEqual(m.total("x"), 0.0)
        self.assertEqual(m.count("y"), 0)

    def test_read_wav_like_soundfile(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "s.wav")
            with wave.open(p, "wb") as w:
                w.setnchannels(2)
                w.setsampwidth(2)
                w.setframerate(16000)
                w.writeframes((16384).to_bytes(2, "little", signed=True) + (-32768).to_bytes(2, "little", signed=True))
            x, rate = T._read_wav(p)
            self.assertEqual(rate, 16000)
            self.assertEqual(x.shape, (1, 2))
            self.assertEqual((x[0, 0], x[0, 1]), (0.5, -1.0))


if __name__ == "__main__":
    unittest.main()
