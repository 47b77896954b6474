"""Offline, citation-exact question answering over a folder of articles.

Re-exports only; loaded lazily so `rag --help` does not import numpy, torch or faiss.
"""
from importlib import import_module

_EXPORTS = {
    "Assistant": "rag.pipeline", "build": "rag.pipeline", "RagError": "rag.errors",
    "Answer": "rag.types", "Chunk": "rag.types", "Citation": "rag.types", "Document": "rag.types", "Hit": "rag.types",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'rag' has no attribute {name!r}")
