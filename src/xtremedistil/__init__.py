"""xtremedistil: distil massive multilingual transformers into tiny, fast students (XtremeDistil, ACL 2020)."""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["__version__", "load_student"]

if TYPE_CHECKING:
    from xtremedistil.student.saved import StudentPredictor


def load_student(path: str, backend: str = "auto") -> StudentPredictor:
    """Load a saved student folder; ``.predict(texts)`` returns entities with character offsets.
    ``backend``: ``torch``, ``onnx`` or ``onnx-int8`` (the folder's export by ``xtremedistil export``);
    ``auto`` takes the fp32 ONNX export when there is one, else PyTorch."""
    from xtremedistil.student.saved import load_student as _load

    return _load(path, backend)
