"""BPMN parse + validate throughput over the third-party corpus, beside bare lxml parsing of the same files.

    make bench-bpmn      # or: python -m bench.bpmn_parse --rounds 300

Two comparisons, each run interleaved in this one process so drift falls on both sides:

  from files   the issue's definition: lxml.etree.parse(path) of each file, beside what `bridge deploy
               FILE` does (read the file, parse_bpmn the bytes). Both pay the same file reads.
  from memory  the stricter one: the same bytes already in memory on both sides (etree.fromstring with
               lxml's default parser, the floor any lxml-based reader pays, beside parse_bpmn), so the
               ratio is all parser and validator.

Target: parse_bpmn within 3x of bare parsing.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from lxml import etree

from bridge.bpmn.reader import parse_bpmn
from bridge.config import PROJECT_ROOT

CORPUS = PROJECT_ROOT.parent / "shared" / "bpmn-corpus" / "flowable-engine"


def bare_from_files(paths: list[Path], _: list[bytes]) -> None:
    for path in paths:
        try:
            etree.parse(str(path))
        except etree.XMLSyntaxError:
            pass


def ours_from_files(paths: list[Path], _: list[bytes]) -> None:
    for path in paths:
        parse_bpmn(path.read_bytes(), path.name)


def bare_from_memory(paths: list[Path], data: list[bytes]) -> None:
    for content in data:
        try:
            etree.fromstring(content)
        except etree.XMLSyntaxError:
            pass


def ours_from_memory(paths: list[Path], data: list[bytes]) -> None:
    for path, content in zip(paths, data, strict=True):
        parse_bpmn(content, path.name)


COMPARISONS = {
    "from files": (("lxml.etree.parse(path)", bare_from_files), ("read + parse_bpmn", ours_from_files)),
    "from memory": (("etree.fromstring(bytes)", bare_from_memory), ("parse_bpmn(bytes)", ours_from_memory)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=300, help="rounds per reader, each over every file")
    args = parser.parse_args()
    paths = [p for p in sorted(CORPUS.iterdir()) if p.name != "LICENSE"]
    data = [p.read_bytes() for p in paths]
    size = sum(len(d) for d in data)

    times: dict[tuple[str, str], list[float]] = {}
    blocks = 10
    for _ in range(blocks):  # interleave every reader so drift falls on all of them
        for comparison, readers in COMPARISONS.items():
            for name, read in readers:
                read(paths, data)  # warm-up
                for _ in range(max(1, args.rounds // blocks)):
                    started = time.perf_counter()
                    read(paths, data)
                    times.setdefault((comparison, name), []).append(time.perf_counter() - started)

    print(f"\nBPMN parsing: {len(paths)} third-party files ({size / 1024:.0f} KiB), {args.rounds} rounds per reader\n")
    print(f"{'comparison':<12} | {'reader':<24} | {'files/s':>8} | {'MiB/s':>6} | "
          f"{'ms/round p50':>12} | {'vs bare':>7}")
    print("-" * 86)
    for comparison, ((bare_name, _), (ours_name, _)) in COMPARISONS.items():
        base = statistics.median(times[(comparison, bare_name)])
        for name in (bare_name, ours_name):
            median = statistics.median(times[(comparison, name)])
            print(f"{comparison:<12} | {name:<24} | {len(paths) / median:>8.0f} | {size / median / 2**20:>6.1f} | "
                  f"{median * 1000:>12.2f} | {median / base:>6.2f}x")
    print("\ntarget: parse_bpmn within 3x of bare parsing")


if __name__ == "__main__":
    main()
