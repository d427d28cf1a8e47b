"""What the benchmarks that serve the bridge share."""

from __future__ import annotations

import asyncio

import aiohttp


async def wait_until_serving(url: str, timeout_s: float = 30) -> None:
    """Until GET url answers 200 (the bridge's /healthz), or RuntimeError after timeout_s."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    async with aiohttp.ClientSession() as session:
        while asyncio.get_running_loop().time() < deadline:
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout_s} s")
