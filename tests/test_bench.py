"""`evonet bench snake --json` end to end (speed targets are read from its output, not asserted here)."""

import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_snake_json(evonet_cmd, subprocess_env):
    proc = subprocess.run(evonet_cmd + ["bench", "snake", "--json", "--population", "32", "--games", "2"],
                          env=subprocess_env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    for key in ["seed_style_steps_per_s", "vectorized_steps_per_s", "ratio", "peak_rss_mb"]:
        assert result[key] > 0
    assert result["ratio"] == result["vectorized_steps_per_s"] / result["seed_style_steps_per_s"]
    assert result["rules"] == "classic 10x10" and result["population"] == 32
    assert result["machine"]["cpus"] >= 1 and result["machine"]["cpu"] and len(result["machine"]["date"]) == 10
    assert {"cpu_id", "simd"} <= set(result["machine"])


def test_machine_names_the_cpu_generation_and_its_vector_width(tmp_path):
    """`machine()` reads the first processor's block: a virtual machine's "AMD EPYC" of two
    generations differs in family/model and in its widest vector instruction set."""
    from evonet.bench import machine

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n"
                    "model name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw\n\n"
                    "processor\t: 1\ncpu family\t: 23\nmodel\t\t: 49\nmodel name\t: other\nflags\t\t: sse2\n\n")
    m = machine(str(info))
    assert (m["cpu"], m["cpu_id"], m["simd"]) == ("AMD EPYC", "family 25 model 17", "avx512f")
    info.write_text("processor\t: 0\ncpu family\t: 23\nmodel\t\t: 49\nmodel name\t: AMD EPYC\n"
                    "flags\t\t: fpu sse2 avx avx2 fma\n")
    assert (machine(str(info))["cpu_id"], machine(str(info))["simd"]) == ("family 23 model 49", "avx2")
    missing = machine(str(tmp_path / "none"))  # no /proc/cpuinfo (not Linux): the platform's name
    assert missing["cpu_id"] is None and missing["simd"] is None and missing["cpu"] and missing["cpus"] >= 1
