"""The student as a service: ``create_app`` (FastAPI), ``serve`` (uvicorn), dynamic micro-batching.

Needs the ``serve`` extra: ``pip install 'xtremedistil[serve]'``."""

from __future__ import annotations

from xtremedistil.serve.app import ServeSettings, create_app, serve

__all__ = ["ServeSettings", "create_app", "serve"]
