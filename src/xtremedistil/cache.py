"""The teacher cache: the fine-tuned teacher runs ONCE over a set of windows; for every real sub-word the
hidden state of one layer and the logits are stored in fp16, ragged (no padding), in chunked shards with a
manifest. Training reads them back through memory maps, so the cache never has to fit in RAM. A sequence
task (text classification) stores one row per window: the layer's sentence vector and the logits.

A killed caching run resumes from the last complete shard: a shard is listed in the manifest only after
its files were renamed into place, so finished shards are never recomputed and partial ones never read.
Under torchrun every rank computes its share of the shards and marks each one it finished with a small
``shard-K.done.json`` (the ranks never write the manifest at once); rank 0 lists them in the manifest when
all are done, and a relaunched run (with any number of processes) counts them as finished.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xtremedistil.batching import SpecialIds, iterate_batches
from xtremedistil.distributed import current
from xtremedistil.errors import XtremeDistilError
from xtremedistil.io import atomic_path, read_json, write_json
from xtremedistil.outputs import TokenOutput
from xtremedistil.progress import Reporter, SilentReporter
from xtremedistil.tasks.base import Encoded

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
ARRAYS = ("hidden", "logits", "offsets")


def data_fingerprint(encoded: Sequence[Encoded]) -> str:
    """Identity of the windows' sub-word ids (what the teacher sees), independent of labels."""
    digest = hashlib.sha256()
    for window in encoded:
        digest.update(np.int64(len(window)).tobytes())
        digest.update(window.input_ids.astype(np.int32).tobytes())
    return digest.hexdigest()


def cache_key(
    teacher_sha: str, layer: int, max_length: int, data_sha: str, vector: str = "", states: str = ""
) -> str:
    text = (
        f"v{FORMAT_VERSION}:{teacher_sha}:{layer}:{max_length}:{data_sha}"
        + (f":{vector}" if vector else "")
        + (f":{states}" if states else "")
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class CacheSpec:
    """What a cache is a cache of; two runs with equal specs share one cache."""

    teacher: str  # teacher name / folder, for humans
    teacher_sha: str  # sha256 of the teacher's weights: the real identity
    layer: int
    max_length: int
    tokenizer: str
    hidden_size: int
    num_labels: int
    vector: str = ""  # sequence tasks: the teacher's sentence vector ("first", "mean"); "" = per sub-word
    # "" = the layer's states (and the logits); "attention" = the attention queries, keys and values inside
    # block ``layer``, side by side (hidden_size = 3 x the teacher's; no logits: num_labels = 0)
    states: str = ""

    def key(self, data_sha: str) -> str:
        return cache_key(self.teacher_sha, self.layer, self.max_length, data_sha, self.vector, self.states)

    def fields(self) -> dict[str, Any]:
        """What the manifest records (no empty ``vector``/``states``, as before they existed)."""
        return {k: v for k, v in vars(self).items() if k not in ("vector", "states") or v}

    @property
    def per_window(self) -> bool:
        return bool(self.vector)


def estimate(encoded: Sequence[Encoded], spec: CacheSpec, windows_per_second: float) -> dict[str, float]:
    """Disk size and time of a cache before anything is computed."""
    subwords = sum(len(w) for w in encoded)
    rows = len(encoded) if spec.per_window else subwords
    size = rows * (spec.hidden_size + spec.num_labels) * 2 + (len(encoded) + 1) * 8
    return {
        "windows": len(encoded),
        "subwords": subwords,
        "bytes": size,
        "seconds": len(encoded) / windows_per_second,
    }


class TeacherCache:
    """Read side: ``outputs(indices, width)`` gives padded teacher hidden states and logits for a batch."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        manifest_path = self.root / MANIFEST
        if not manifest_path.is_file():
            raise XtremeDistilError("no teacher cache here (manifest.json missing)", path=self.root)
        self.manifest = read_json(manifest_path)
        if not self.manifest.get("complete"):
            raise XtremeDistilError(
                "teacher cache is incomplete; rerun `xtremedistil cache` to finish it", path=root
            )
        self.shard_size = int(self.manifest["shard_size"])
        self.per_window = bool(self.manifest.get("vector"))
        self._maps: dict[int, dict[str, np.ndarray]] = {}

    def __len__(self) -> int:
        return int(self.manifest["windows"])

    @property
    def hidden_size(self) -> int:
        return int(self.manifest["hidden_size"])

    def _shard(self, k: int) -> dict[str, np.ndarray]:
        if k not in self._maps:
            self._maps[k] = {
                name: np.load(self.root / _shard_file(k, name), mmap_mode="r") for name in ARRAYS
            }
        return self._maps[k]

    def window(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(T, D) hidden and (T, C) logits of window ``i`` (fp16 memory-mapped views)."""
        shard = self._shard(i // self.shard_size)
        a, b = shard["offsets"][i % self.shard_size : i % self.shard_size + 2]
        return shard["hidden"][a:b], shard["logits"][a:b]

    def outputs(self, indices: Sequence[int], width: int, *, hidden: bool = True) -> TokenOutput:
        """Teacher outputs laid out like ``collate``: row r, positions 1..T_r; zeros on specials/padding.

        One gather per shard and one scatter into the padded batch (no per-window copies); ``hidden=False``
        skips the layer states for stages that read only the logits. A per-window cache (sequence tasks)
        gives (B, C) logits and (B, H) vectors; ``width`` is not read."""
        read = self._read(indices, width, ("logits", "hidden") if hidden else ("logits",))
        return TokenOutput(logits=read["logits"], hidden=read.get("hidden"))

    def states(self, indices: Sequence[int], width: int) -> torch.Tensor:
        """The stored states alone, laid out as ``outputs``' (a further layer's, or attention states)."""
        return self._read(indices, width, ("hidden",))["hidden"]

    def _read(self, indices: Sequence[int], width: int, names: Sequence[str]) -> dict[str, torch.Tensor]:
        indices = np.asarray(indices, dtype=np.int64)
        shard_of, local = np.divmod(indices, self.shard_size)
        if self.per_window:
            return {name: self._rows(name, shard_of, local) for name in names}
        starts, lengths = np.empty(len(indices), np.int64), np.empty(len(indices), np.int64)
        for k in np.unique(shard_of):
            rows = shard_of == k
            offsets = self._shard(int(k))["offsets"]
            starts[rows], lengths[rows] = (
                offsets[local[rows]],
                offsets[local[rows] + 1] - offsets[local[rows]],
            )
        # the token positions of each row inside its shard, rows in batch order
        first = np.repeat(np.cumsum(lengths) - lengths, lengths)
        token = np.repeat(starts, lengths) + np.arange(int(lengths.sum())) - first
        token_shard = np.repeat(shard_of, lengths)
        place = torch.zeros(len(indices), width, dtype=torch.bool)
        place[:, 1:] = torch.arange(1, width) <= torch.from_numpy(lengths).unsqueeze(1)
        return {name: self._scatter(name, token, token_shard, place) for name in names}

    def _rows(self, name: str, shard_of: np.ndarray, local: np.ndarray) -> torch.Tensor:
        dim = self.hidden_size if name == "hidden" else int(self.manifest["num_labels"])
        values = np.empty((len(local), dim), dtype=np.float16)
        for k in np.unique(shard_of):
            at = shard_of == k
            values[at] = self._shard(int(k))[name][local[at]]
        return torch.from_numpy(values).float()

    def _scatter(
        self, name: str, token: np.ndarray, token_shard: np.ndarray, place: torch.Tensor
    ) -> torch.Tensor:
        dim = self.hidden_size if name == "hidden" else int(self.manifest["num_labels"])
        values = np.empty((len(token), dim), dtype=np.float16)
        for k in np.unique(token_shard):
            at = token_shard == k
            values[at] = self._shard(int(k))[name][token[at]]
        out = torch.zeros(*place.shape, dim)
        out[place] = torch.from_numpy(values).float()
        return out


class LayeredCache:
    """The cache of the representation layer with the caches of the layer map's further teacher layers
    (one single-layer cache each, over the same windows): ``outputs`` adds their states as ``layers``; and
    the cache of one layer's attention queries/keys/values (``relations``), added as ``relations``."""

    def __init__(
        self, main: TeacherCache, more: Sequence[TeacherCache], relations: TeacherCache | None = None
    ) -> None:
        self.main, self.more, self.relations = main, tuple(more), relations

    def __getattr__(self, name: str) -> Any:  # everything else is the main cache's
        return getattr(self.main, name)

    def __len__(self) -> int:
        return len(self.main)

    def outputs(self, indices: Sequence[int], width: int, *, hidden: bool = True) -> TokenOutput:
        out = self.main.outputs(indices, width, hidden=hidden)
        if not hidden or not (self.more or self.relations):
            return out
        layers = tuple(cache.states(indices, width) for cache in self.more)
        relations = self.relations.states(indices, width) if self.relations else None
        return TokenOutput(out.logits, out.hidden, out.mask, layers, relations)  # type: ignore[arg-type]


def _shard_file(k: int, name: str) -> str:
    return f"shard-{k:05d}.{name}.npy"


def build_cache(
    teacher: Any,
    encoded: Sequence[Encoded],
    root: Path,
    spec: CacheSpec,
    *,
    shard_size: int = 4096,
    batch_size: int = 64,
    reporter: Reporter | None = None,
    description: str = "cache teacher outputs",
    on_logits: Callable[[int, np.ndarray], None] | None = None,
) -> TeacherCache:
    """Run ``teacher`` over ``encoded`` once and store layer states and logits; resume if interrupted.

    ``on_logits(i, logits)`` receives the full-precision logits (T, C) of every window computed in this call,
    so a caller can score the teacher from the same forward pass instead of running it again."""
    reporter = reporter or SilentReporter()
    root = Path(root)
    context = current()
    data_sha = data_fingerprint(encoded)
    manifest = context.on_main(lambda: _open_manifest(root, spec, data_sha, len(encoded), shard_size))
    shard_size = int(manifest["shard_size"])  # an existing cache keeps its own shard size
    if manifest["complete"]:
        return TeacherCache(root)
    special = SpecialIds.from_tokenizer(teacher.tokenizer)
    n_shards = max(1, -(-len(encoded) // shard_size))
    done = {s["index"] for s in manifest["shards"]}
    # under torchrun each rank computes its share of the shards left, and marks each one it finished
    todo = context.shard([k for k in range(n_shards) if k not in done])
    remaining = sum(min(shard_size, len(encoded) - k * shard_size) for k in todo)
    if done:
        reporter.info(f"cache: resuming, {len(done)}/{n_shards} shards already complete")
    start = time.perf_counter()
    with reporter.bar(description, total=remaining) as advance:
        for k in todo:
            windows = encoded[k * shard_size : (k + 1) * shard_size]
            subwords = _write_shard(
                teacher, windows, root, k, spec, special, batch_size, advance, on_logits, k * shard_size
            )
            shard = {"index": k, "windows": len(windows), "subwords": subwords}
            if context.distributed:  # ranks do not share the manifest: each marks its own shards
                write_json(root / _marker_file(k), shard)
                continue
            manifest["shards"].append(shard)
            manifest["shards"].sort(key=lambda s: s["index"])
            write_json(root / MANIFEST, manifest)
    seconds = context.all_sum(time.perf_counter() - start) / context.world_size

    def complete() -> None:
        _collect_markers(root, manifest)
        missing = sorted(set(range(n_shards)) - {s["index"] for s in manifest["shards"]})
        if missing:
            raise XtremeDistilError(
                f"teacher cache shards {missing} were not written; rerun to finish", path=root
            )
        manifest["subwords"] = sum(s["subwords"] for s in manifest["shards"])
        manifest["seconds"] = manifest.get("seconds", 0.0) + seconds
        manifest["bytes"] = sum(f.stat().st_size for f in root.glob("shard-*.npy"))
        manifest["complete"] = True
        write_json(root / MANIFEST, manifest)

    context.on_main(complete)
    return TeacherCache(root)


def _marker_file(k: int) -> str:
    return f"shard-{k:05d}.done.json"


def _collect_markers(root: Path, manifest: dict[str, Any]) -> None:
    """List in the manifest the shards that ranks of a multi-process run marked finished (their files were
    renamed into place before the marker was written), then drop the markers."""
    listed = {s["index"] for s in manifest["shards"]}
    markers = sorted(root.glob("shard-*.done.json"))
    for marker in markers:
        shard = read_json(marker)
        if shard["index"] not in listed:
            manifest["shards"].append(shard)
    if markers:
        manifest["shards"].sort(key=lambda s: s["index"])
        write_json(root / MANIFEST, manifest)
        for marker in markers:
            marker.unlink()


def _open_manifest(
    root: Path, spec: CacheSpec, data_sha: str, windows: int, shard_size: int
) -> dict[str, Any]:
    path = root / MANIFEST
    expected = {
        "format": FORMAT_VERSION,
        **spec.fields(),
        "data_sha": data_sha,
        "windows": windows,
        "shard_size": shard_size,
        "dtype": "float16",
    }
    if path.is_file():
        manifest = read_json(path)
        _collect_markers(root, manifest)  # shards finished by ranks of a killed multi-process run
        # the shard size is storage layout and the teacher name a label: the teacher's hash is its identity
        identity = [k for k in expected if k not in ("shard_size", "teacher")]
        differ = [k for k in identity if manifest.get(k) != expected[k]]
        if not differ:
            return manifest
        detail = ", ".join(f"{k}: cached {manifest.get(k)!r}, now {expected[k]!r}" for k in differ)
        raise XtremeDistilError(
            "this cache folder holds outputs of a different teacher, layer or data "
            f"({detail}); delete it or use another",
            path=root,
        )
    root.mkdir(parents=True, exist_ok=True)
    manifest = {**expected, "shards": [], "complete": False}
    write_json(path, manifest)
    return manifest


def _write_shard(
    teacher: Any,
    windows: Sequence[Encoded],
    root: Path,
    k: int,
    spec: CacheSpec,
    special: SpecialIds,
    batch_size: int,
    advance: Any,
    on_logits: Callable[[int, np.ndarray], None] | None = None,
    first: int = 0,  # index of the shard's first window in the whole set (what ``on_logits`` receives)
) -> int:
    lengths = np.array([len(w) for w in windows])
    subwords = int(lengths.sum())
    if spec.per_window:  # one row per window: offsets are 0, 1, 2, ...
        lengths = np.ones(len(windows), dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    hidden = np.empty((offsets[-1], spec.hidden_size), dtype=np.float16)
    logits = np.empty((offsets[-1], spec.num_labels), dtype=np.float16)
    attention = spec.states == "attention"
    with torch.inference_mode():
        for batch in iterate_batches(windows, batch_size, special, shuffle=False):
            if spec.per_window:
                out = teacher(batch, layer=spec.layer, vector=spec.vector).to("cpu")
                rows = batch.index.numpy()
                hidden[rows] = out.hidden.numpy()
                logits[rows] = out.logits.numpy()
                if on_logits is not None:
                    for row, i in enumerate(rows.tolist()):
                        on_logits(first + i, out.logits[row].float().numpy())
                advance(len(batch))
                continue
            out = teacher(batch, layer=spec.layer, attention=attention).to("cpu")
            for row, i in enumerate(batch.index.tolist()):
                a, b = offsets[i], offsets[i + 1]
                hidden[a:b] = out.hidden[row, 1 : b - a + 1].numpy()
                if attention:
                    continue
                logits[a:b] = out.logits[row, 1 : b - a + 1].numpy()
                if on_logits is not None:
                    on_logits(first + i, out.logits[row, 1 : b - a + 1].float().numpy())
            advance(len(batch))
    for name, array in (("hidden", hidden), ("logits", logits), ("offsets", offsets)):
        with atomic_path(root / _shard_file(k, name)) as tmp, open(tmp, "wb") as handle:
            np.save(handle, array)
    return subwords
