"""Data preparation at start-up: aekit's first start (decode + resize + cache) against its cached second
start, and the article's datasets.map that re-decodes at every start, in the same run.

    python benchmarks/data_prep.py                      # 9,000 celeba-10k training faces
    python benchmarks/data_prep.py --count 2000 --rounds 2

Every start runs in a fresh Python process (as `aekit train` would), timed from inside around the
data preparation only (imports excluded, equal for all), by the wall clock and by the process's CPU
time (all threads):

* article (datasets.map): an in-memory ``datasets.Dataset`` of the image files, cast to
  ``datasets.Image()``, mapped in batches through PIL ``resize((64, 64))`` (bicubic) to uint8 arrays,
  then read out as one numpy array. The map is not cached, so every start decodes everything again;
  its second start costs what the first did.
* aekit first start: ``aekit.data.prepare(FOLDER[:N])`` with an empty ``AEKIT_HOME``: lists and
  fingerprints the files, decodes and resizes them in parallel threads, writes the uint8 cache.
* aekit cached start: the same call again: fingerprints the files (size and mtime), finds the cache,
  memory-maps it; the time includes reading every pixel into memory (``np.array``), so nothing is
  left lazy.

Rounds are interleaved (article, aekit first, aekit cached), each round with a new empty
``AEKIT_HOME``; the table shows the median round. The target: the first start takes >= 20x the cached one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_IMAGES = ROOT.parent / "shared" / "data" / "celeba-10k" / "images"

AEKIT_CHILD = r"""
import json, sys, time
import numpy as np
from aekit.data import prepare
from aekit.plugins import get_registry
get_registry()                            # plugin loading is start-up, not data preparation: equal for both starts
spec = sys.argv[1]
w0, c0 = time.perf_counter(), time.process_time()
data = prepare(spec, 64, progress=False)
pixels = np.array(data.images)            # every pixel in memory, nothing left memory-mapped
wall, cpu = time.perf_counter() - w0, time.process_time() - c0
checksum = int(pixels[:, :, ::7, ::7].astype(np.int64).sum())
from aekit.image_cache import checksum as cache_checksum
v0 = time.perf_counter()                  # what verifying the cache's checksum costs (part of the cached start)
cache_checksum(data.images, data.names, data.skipped, data.attributes)
print(json.dumps({"wall": wall, "cpu": cpu, "n": len(pixels), "verify": time.perf_counter() - v0,
                  "from_cache": data.from_cache, "checksum": checksum, "shape": list(pixels.shape)}))
"""

ARTICLE_CHILD = r"""
import json, sys, time
from pathlib import Path
import numpy as np
import datasets
datasets.disable_progress_bars()
folder, start, stop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
w0, c0 = time.perf_counter(), time.process_time()
files = sorted(str(p) for p in Path(folder).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[start:stop]
dataset = datasets.Dataset.from_dict({"image": files}).cast_column("image", datasets.Image())

def f(batch):  # the article's map: resize each PIL image to 64x64 and keep the pixels
    return {"pixels": [np.asarray(im.convert("RGB").resize((64, 64))).transpose(2, 0, 1) for im in batch["image"]]}

dataset = dataset.map(f, batched=True, batch_size=1000, keep_in_memory=True, remove_columns=["image"])
dataset.set_format("numpy")
pixels = np.asarray(dataset[:]["pixels"], dtype=np.uint8)
checksum = int(pixels[:, :, ::7, ::7].astype(np.int64).sum())
print(json.dumps({"wall": time.perf_counter() - w0, "cpu": time.process_time() - c0, "n": len(pixels),
                  "from_cache": False, "checksum": checksum, "shape": list(pixels.shape)}))
"""


def run_child(code: str, args: list[str], env: dict, label: str) -> dict:
    result = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"a benchmark process failed:\n{result.stderr[-3000:]}")
    row = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"  {label}: {row['wall']:.3f} s wall, {row['cpu']:.3f} s CPU", file=sys.stderr, flush=True)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default=str(DEFAULT_IMAGES), help="A folder of images (sorted by name).")
    parser.add_argument("--count", type=int, default=9000, help="The first COUNT images (celeba-10k's training faces).")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--no-article", action="store_true", help="Leave out the datasets.map reference (needs `datasets`).")
    args = parser.parse_args()

    folder = Path(args.images).resolve()
    spec = f"{folder}[:{args.count}]"
    for p in sorted(folder.iterdir())[: args.count]:  # warm the page cache: every start reads the files from memory
        p.read_bytes()
    rows: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            env = dict(os.environ, AEKIT_HOME=str(Path(tmp) / f"home{r}"), HF_DATASETS_CACHE=str(Path(tmp) / "hf"))
            if not args.no_article:
                rows.setdefault("article: datasets.map, every start", []).append(
                    run_child(ARTICLE_CHILD, [str(folder), "0", str(args.count)], env, "article"))
            first = run_child(AEKIT_CHILD, [spec], env, "aekit first start")
            cached = run_child(AEKIT_CHILD, [spec], env, "aekit cached start")
            assert not first["from_cache"] and cached["from_cache"], "the second start did not use the cache"
            assert first["checksum"] == cached["checksum"], "the cached pixels differ from the decoded ones"
            rows.setdefault("aekit first start (decode + cache)", []).append(first)
            rows.setdefault("aekit cached start", []).append(cached)

    cached = statistics.median(r["wall"] for r in rows["aekit cached start"])
    cached_cpu = statistics.median(r["cpu"] for r in rows["aekit cached start"])
    print(f"{args.count} images from {spec}; python {platform.python_version()}, {os.cpu_count()} CPU(s), "
          f"AEKIT_DECODE_THREADS={os.environ.get('AEKIT_DECODE_THREADS', 'default')}; median of {args.rounds} "
          f"interleaved round(s); load average at the end {os.getloadavg()[0]:.1f}\n")
    print("| start | seconds (wall) | CPU seconds | images/s (wall) | times the cached start (wall) | (CPU) |")
    print("|---|---|---|---|---|---|")
    for name, results in rows.items():
        wall = statistics.median(r["wall"] for r in results)
        cpu = statistics.median(r["cpu"] for r in results)
        n = results[0]["n"]
        print(f"| {name} | {wall:.3f} | {cpu:.3f} | {n / wall:,.0f} | {wall / cached:.1f}x | {cpu / cached_cpu:.1f}x |")
    verify = statistics.median(r["verify"] for r in rows["aekit cached start"])
    print(f"\nThe cached start includes verifying the cache's xxh3 checksum over every pixel: {verify:.3f} s "
          f"({verify / cached:.0%} of it).")


if __name__ == "__main__":
    main()
