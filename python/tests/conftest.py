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

    def get(text_and_signature):
        text, signature = text_and_signature
        if text not in cache:
            workdir = tmp_path_factory.mktemp(signature.name)
            cache[text] = runner.compile_function(text, signature, workdir)
        return cache[text]

    return get
