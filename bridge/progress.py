"""Progress bars for the long commands (backfill, demo seed, bench data), on stderr and only on a terminal:
piped or logged output stays clean."""

from __future__ import annotations

from tqdm import tqdm


class Bars:
    """One counting bar per phase, made on first use: `bars("tasks")` counts one more task read."""

    def __init__(self, totals: dict[str, int] | None = None) -> None:
        self.totals = totals or {}
        self.bars: dict[str, tqdm] = {}

    def __call__(self, phase: str, count: int = 1) -> None:
        bar = self.bars.get(phase)
        if bar is None:
            bar = self.bars[phase] = tqdm(desc=phase, total=self.totals.get(phase), unit="", disable=None,
                                          leave=True, dynamic_ncols=True)
        bar.update(count)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()

    def __enter__(self) -> Bars:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
