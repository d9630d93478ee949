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
