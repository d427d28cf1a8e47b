"""The engine harness: the build is cached by what engine/ holds, and a failed start shows the engine's log."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bridge.flowable.local_engine import ENGINE_DIR, EngineError, LocalEngine, build_engine_jar, source_fingerprint


def test_the_fingerprint_follows_the_sources_and_ignores_build_output(tmp_path: Path):
    engine = tmp_path / "engine"
    shutil.copytree(ENGINE_DIR, engine, ignore=shutil.ignore_patterns("target"))
    before = source_fingerprint(engine)
    (engine / "target").mkdir()
    (engine / "target" / "whatever.class").write_bytes(b"\xca\xfe")
    assert source_fingerprint(engine) == before
    pom = engine / "pom.xml"
    pom.write_text(pom.read_text() + "\n<!-- changed -->\n")
    assert source_fingerprint(engine) != before


@pytest.mark.slow
@pytest.mark.needs_engine  # starts the engine's jar (and it fails)
async def test_a_start_that_fails_raises_with_the_engine_log(tmp_path: Path):
    import asyncio

    jar = await asyncio.to_thread(build_engine_jar)
    engine = LocalEngine(jar, database_url="postgresql://postgres@127.0.0.1:1/nowhere",
                         log_file=tmp_path / "engine.log")
    with pytest.raises(EngineError) as failed:
        await asyncio.to_thread(engine.start, 120)
    message = str(failed.value)
    assert "the engine exited" in message and str(tmp_path / "engine.log") in message
    assert "Connection to 127.0.0.1:1 refused" in message  # the engine's own words, from its log
    assert not engine.running


def test_only_the_newest_cached_builds_are_kept(tmp_path: Path):
    import os

    from bridge.flowable.local_engine import _prune

    for age in range(5):
        jar = tmp_path / f"onecms-flowable-engine-{age:016x}.jar"
        jar.write_bytes(b"jar")
        os.utime(jar, (1_000_000 - age * 60, 1_000_000 - age * 60))
    (tmp_path / "unrelated.txt").write_text("stays")
    _prune(tmp_path, keep=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "onecms-flowable-engine-0000000000000000.jar", "onecms-flowable-engine-0000000000000001.jar",
        "onecms-flowable-engine-0000000000000002.jar", "unrelated.txt"]
