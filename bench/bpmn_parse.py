"""BPMN parse + validate throughput over the third-party corpus, beside bare lxml parsing of the same files.

    make bench-bpmn      # or: python -m bench.bpmn_parse --rounds 30

Both sides read the same bytes from memory (no disk in the loop), round after round, in this one
process. "bare lxml" is etree.fromstring with lxml's default parser: the floor any lxml-based reader
pays. Target: parse_bpmn within 3x of it.
"""

from __future__ import annotations

import argparse
import statistics
import time

from lxml import etree

from bridge.bpmn_meta import parse_bpmn
from bridge.config import PROJECT_ROOT

CORPUS = PROJECT_ROOT.parent / "shared" / "bpmn-corpus" / "flowable-engine"


def bare(files: list[tuple[str, bytes]]) -> None:
    for _, data in files:
        try:
            etree.fromstring(data)
        except etree.XMLSyntaxError:
            pass


def ours(files: list[tuple[str, bytes]]) -> None:
    for name, data in files:
        parse_bpmn(data, name)


def measure(fn, files, rounds: int) -> list[float]:
    """Seconds per round, each round over every file."""
    fn(files)  # warm-up
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn(files)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    files = [(p.name, p.read_bytes()) for p in sorted(CORPUS.iterdir()) if p.name != "LICENSE"]
    size = sum(len(d) for _, d in files)

    results = {}
    for _ in range(2):  # interleave the two so drift falls on both
        for name, fn in (("bare lxml parse", bare), ("parse_bpmn (parse + validate)", ours)):
            results.setdefault(name, []).extend(measure(fn, files, args.rounds // 2))

    print(f"\nBPMN parsing: {len(files)} third-party files ({size / 1024:.0f} KiB), {args.rounds} rounds each\n")
    print(f"{'reader':<30} | {'files/s':>8} | {'MiB/s':>6} | {'ms/round p50':>12} | {'vs bare':>7}")
    print("-" * 76)
    base = statistics.median(results["bare lxml parse"])
    for name, times in results.items():
        median = statistics.median(times)
        print(f"{name:<30} | {len(files) / median:>8.0f} | {size / median / 2**20:>6.1f} | "
              f"{median * 1000:>12.2f} | {median / base:>6.2f}x")
    print("\ntarget: parse_bpmn within 3x of bare parsing")


if __name__ == "__main__":
    main()
