"""Shared fixtures: compiled functions are cached per session, so each IR
text is compiled once however many random cases run on it."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from moe_mlir import runner  # noqa: E402


@pytest.fixture(scope="session")
def compiled(tmp_path_factory):
    cache = {}

    def get(text_and_signature, pipeline=runner.DEFAULT_PIPELINE):
        text, signature = text_and_signature
        key = (text, pipeline)
        if key not in cache:
            workdir = tmp_path_factory.mktemp(signature.name)
            cache[key] = runner.compile_function(text, signature, workdir, pipeline=pipeline)
        return cache[key]

    return get
