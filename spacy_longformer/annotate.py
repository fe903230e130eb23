"""Annotate a corpus with a saved pipeline on Ray Data: ``python -m spacy_longformer annotate``.

The input is cut into *shards*, runs of consecutive records of one input file (``.txt`` files: of
consecutive files), planned on the driver by one streaming pass that also fingerprints the input.
A shard is the unit of everything else: one Ray Data row, one actor call, one output file, one
retry, one resume step. Ray Data feeds the shards to a fixed pool of actors
(``map_batches(..., compute=ActorPoolStrategy(...))``), each of which loads the pipeline once with
``spacy.load``, reads its shard's records, runs ``nlp.pipe`` and writes ``shard-NNNNNN.spacy``
(a DocBin with user data) and then its summary ``shard-NNNNNN.json``, each to a temporary name
renamed into place. A shard is done when its summary exists, so a rerun skips exactly the shards
whose files are complete, and a killed run never leaves a half shard that a rerun trusts.
Documents keep their record id (``doc.user_data["source"]``, ``["line"]``), the record's ``meta``
(``["meta"]``) and its other fields (``["fields"]``).

What Ray does when an actor dies mid-shard (killed, out of memory): Ray Data's defaults restart the
actor and retry the task forever (``max_restarts=-1``, ``max_task_retries=-1``), so a shard that
kills its worker every time would stall the run; once retries run out, the error aborts the whole
dataset unless ``DataContext.max_errored_blocks`` lets it go, and then the shard's rows are dropped
with only a log line. So: ``max_task_retries`` is finite (``MAX_ATTEMPTS``), one shard at a time is
in flight per actor (a second queued shard would be charged for its neighbour's death), failed
blocks are let go, and the driver lists the records of every shard that came back neither as a
result nor as files as failed, with the reason, in ``manifest.json``; a rerun tries them again.
Everything short of a dying process (a bad line, a record the pipeline raises on) is caught inside
the actor and listed per record.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import time
import uuid
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import spacy
import srsly
from spacy.language import Language
from spacy.tokens import Doc, DocBin
from spacy.util import minibatch
from spacy.vocab import Vocab

from .errors import Errors

__all__ = ["MANIFEST", "InputPlan", "Shard", "annotate", "plan_input", "read_annotated"]

MANIFEST = "manifest.json"
# Bump when the layout of OUTPUT changes: a rerun refuses to mix layouts.
LAYOUT_VERSION = 1
FORMATS = {".jsonl": "jsonl", ".txt": "txt", ".spacy": "spacy"}
# A shard's first try and two retries on a restarted actor.
MAX_ATTEMPTS = 3
_TMP = ".tmp"
_EXAMPLE = '{"text": "...", "meta": {...}}'


# --- The plan: shards of the input --------------------------------------------------------------------


@dataclass(frozen=True)
class Shard:
    """Consecutive records of the input: the unit of work, output, retry and resume.

    ``kind`` "jsonl": lines from byte ``start`` to ``stop`` of ``sources[0]``, the first being line
    ``first_line``; "spacy": docs ``start`` to ``stop`` of a DocBin; "txt": whole files, one
    record each (line 1).
    """

    index: int
    kind: str
    sources: tuple[str, ...]
    start: int
    stop: int
    first_line: int
    n_records: int

    @property
    def name(self) -> str:
        return f"shard-{self.index:06d}"

    def to_row(self) -> dict[str, Any]:
        return {**asdict(self), "sources": list(self.sources)}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Shard:
        return cls(**{**row, "sources": tuple(row["sources"])})


@dataclass
class InputPlan:
    """The input cut into shards, and a fingerprint of what it holds (names and bytes)."""

    path: Path
    root: Path
    shards: list[Shard]
    fingerprint: str
    n_files: int

    @property
    def n_records(self) -> int:
        return sum(shard.n_records for shard in self.shards)


def plan_input(path: str | Path, *, shard_size: int) -> InputPlan:
    """Cut a JSONL / ``.txt`` / ``.spacy`` file, or a folder of them, into shards of ``shard_size``
    records, in the order of the files' relative paths, then of their lines.

    One streaming pass over every byte (the fingerprint needs them anyway): memory holds one entry
    per shard, not per record. Hidden files and folders are skipped, as are other files in a
    folder; a folder without any supported file is an error.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(Errors.LF182.format(path=path, problem="no such file or folder"))
    if path.is_dir():
        root = path
        files = sorted(
            (
                file
                for file in path.rglob("*")
                if file.is_file() and not any(part.startswith(".") for part in file.relative_to(path).parts)
            ),
            key=lambda file: file.relative_to(path).as_posix(),
        )
        if not files:
            raise ValueError(Errors.LF182.format(path=path, problem="the folder holds no files"))
        supported = [file for file in files if file.suffix.lower() in FORMATS]
        if not supported:
            suffixes = sorted({file.suffix or "(no suffix)" for file in files})
            found = f"the folder holds {len(files)} files, none .jsonl, .txt or .spacy (found {', '.join(suffixes)})"
            raise ValueError(Errors.LF183.format(path=path, found=found))
    else:
        root = path.parent
        supported = [path]
        if path.suffix.lower() not in FORMATS:
            found = f"its suffix {path.suffix or '(none)'!r} names no format this command reads"
            raise ValueError(Errors.LF183.format(path=path, found=found))
    hasher = hashlib.sha256()
    shards: list[Shard] = []
    txt: list[str] = []

    def add(kind: str, sources: Iterable[str], start: int, stop: int, first_line: int, n: int) -> None:
        shards.append(Shard(len(shards), kind, tuple(sources), start, stop, first_line, n))

    def flush_txt() -> None:
        if txt:
            add("txt", txt, 0, 0, 1, len(txt))
            txt.clear()

    for file in supported:
        source = file.relative_to(root).as_posix()
        kind = FORMATS[file.suffix.lower()]
        hasher.update(source.encode("utf8") + b"\0")
        if kind == "txt":
            hasher.update(file.read_bytes())
            txt.append(source)
            if len(txt) == shard_size:
                flush_txt()
            continue
        flush_txt()
        if kind == "jsonl":
            for start, stop, first_line, n in _plan_jsonl(file, shard_size, hasher):
                add(kind, [source], start, stop, first_line, n)
        else:
            n_docs = _count_docs(file, hasher)
            for start in range(0, n_docs, shard_size):
                stop = min(start + shard_size, n_docs)
                add(kind, [source], start, stop, start + 1, stop - start)
        hasher.update(b"\0")
    flush_txt()
    if not shards:
        problem = "it holds no records (only empty .jsonl or .spacy files, or blank lines)"
        raise ValueError(Errors.LF182.format(path=path, problem=problem))
    return InputPlan(path, root, shards, hasher.hexdigest(), len(supported))


def _plan_jsonl(file: Path, shard_size: int, hasher: Any) -> Iterator[tuple[int, int, int, int]]:
    """(start byte, stop byte, first line, records) of each shard: ``shard_size`` non-blank lines,
    a shard starting at its first record (blank lines go with the record before them)."""
    start = offset = n = 0
    first_line = 1
    with file.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            hasher.update(line)
            if line.strip():
                if n == shard_size:
                    yield start, offset, first_line, n
                    start, first_line, n = offset, number, 0
                n += 1
            offset += len(line)
    if n:
        yield start, offset, first_line, n


def _count_docs(file: Path, hasher: Any) -> int:
    data = file.read_bytes()
    hasher.update(data)
    try:
        return len(DocBin().from_bytes(data))
    except Exception as error:  # zlib, msgpack or a missing key: all say "not a DocBin"
        problem = f"it is not a DocBin ({type(error).__name__}: {error})"
        raise ValueError(Errors.LF182.format(path=file, problem=problem)) from None


def _jsonl_lines(path: Path, shard: Shard) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, raw line) of each non-blank line of a JSONL shard."""
    with path.open("rb") as file:
        file.seek(shard.start)
        offset = shard.start
        for number, line in enumerate(file, start=shard.first_line):
            if offset >= shard.stop:
                break
            offset += len(line)
            if line.strip():
                yield number, line


def _record_ids(shard: Shard, root: Path) -> Iterator[tuple[str, int]]:
    """(source, line) of each record of a shard, without parsing it: for a shard lost with its worker."""
    if shard.kind == "jsonl":
        yield from ((shard.sources[0], line) for line, _ in _jsonl_lines(root / shard.sources[0], shard))
    elif shard.kind == "txt":
        yield from ((source, 1) for source in shard.sources)
    else:
        yield from ((shard.sources[0], shard.first_line + i) for i in range(shard.n_records))


class _BadRecord(ValueError):
    """A record that can't become a Doc; its message goes to the manifest."""


def _record_doc(nlp: Language, raw: bytes, *, text_key: str, first: bool) -> Doc:
    """A Doc of one JSONL line, with its ``meta`` and other fields in ``doc.user_data``."""
    try:
        line = raw.decode("utf8")
    except UnicodeDecodeError as error:
        raise _BadRecord(f"not UTF-8 text ({error})") from None
    try:
        # A byte-order mark may open a file written on Windows.
        record = json.loads(line.lstrip("\ufeff") if first else line)
    except json.JSONDecodeError as error:
        raise _BadRecord(f"invalid JSON ({error}): {line.strip()[:60]!r}") from None
    if not isinstance(record, dict):
        raise _BadRecord(f"expected a JSON object like {_EXAMPLE}, got {type(record).__name__}")
    if text_key not in record:
        keys = ", ".join(map(repr, record)) or "none"
        raise _BadRecord(
            f'no "{text_key}" key (keys: {keys}); put the text under "{text_key}" or pass --text-key'
        )
    text = record[text_key]
    if not isinstance(text, str):
        raise _BadRecord(f'"{text_key}" must be a string, got {type(text).__name__} {text!r:.60}')
    doc = nlp.make_doc(text)
    doc.user_data["meta"] = record.get("meta", {})
    doc.user_data["fields"] = {key: value for key, value in record.items() if key not in (text_key, "meta")}
    return doc


def _shard_docs(
    nlp: Language, shard: Shard, root: Path, text_key: str
) -> Iterator[tuple[str, int, Doc | str]]:
    """(source, line, Doc or the reason there is none) for each record of a shard, in order."""
    if shard.kind == "jsonl":
        source = shard.sources[0]
        for line, raw in _jsonl_lines(root / source, shard):
            try:
                yield source, line, _record_doc(nlp, raw, text_key=text_key, first=line == 1)
            except _BadRecord as error:
                yield source, line, str(error)
    elif shard.kind == "txt":
        for source in shard.sources:
            try:
                text = (root / source).read_text(encoding="utf8")
            except UnicodeDecodeError as error:
                yield source, 1, f"not UTF-8 text ({error})"
                continue
            doc = nlp.make_doc(text)
            doc.user_data["meta"], doc.user_data["fields"] = {}, {}
            yield source, 1, doc
    else:
        source = shard.sources[0]
        docs = DocBin().from_disk(root / source).get_docs(nlp.vocab)
        for line, doc in enumerate(islice(docs, shard.start, shard.stop), start=shard.first_line):
            yield source, line, doc


# --- The actors ------------------------------------------------------------------------------------------


class _ShardAnnotator:
    """A Ray Data actor: loads the pipeline once, then annotates and writes one shard a call.

    Each call returns the shard's summary (also written as ``shard-NNNNNN.json``); a retry of a
    shard whose files are already complete returns that summary without annotating again.
    """

    def __init__(self, *, pipeline: str, root: str, output: str, text_key: str, batch_size: int, gpu: bool):
        if gpu:
            spacy.require_gpu()  # the GPU Ray gave this actor is device 0 of CUDA_VISIBLE_DEVICES
        self.nlp = spacy.load(pipeline)
        self.root, self.output = Path(root), Path(output)
        self.text_key, self.batch_size = text_key, batch_size

    def __call__(self, batch: Any) -> dict[str, list[str]]:
        return {
            "summary": [srsly.json_dumps(self._annotate(Shard.from_row(row))) for row in batch.to_pylist()]
        }

    def _annotate(self, shard: Shard) -> dict[str, Any]:
        written = _read_summary(self.output, shard)
        if written is not None:  # a retry of a shard whose worker died after writing it
            return written
        start = time.perf_counter()
        doc_bin = DocBin(store_user_data=True)
        failed: list[dict[str, Any]] = []
        n_tokens = 0
        for chunk in minibatch(_shard_docs(self.nlp, shard, self.root, self.text_key), self.batch_size):
            docs = []
            for source, line, doc in chunk:
                if isinstance(doc, str):
                    failed.append({"line": line, "source": source, "error": doc})
                else:
                    doc.user_data["source"], doc.user_data["line"] = source, line
                    docs.append(doc)
            for doc, error in self._pipe(docs):
                if error is None:
                    doc_bin.add(doc)
                    n_tokens += len(doc)
                else:
                    failed.append(
                        {"line": doc.user_data["line"], "source": doc.user_data["source"], "error": error}
                    )
        _write_atomically(self.output / f"{shard.name}.spacy", doc_bin.to_bytes())
        summary = {
            "shard": shard.name,
            "records": shard.n_records,
            "docs": len(doc_bin),
            "tokens": n_tokens,
            "failed": sorted(failed, key=lambda entry: (entry["source"], entry["line"])),
            "seconds": time.perf_counter() - start,
            "actor": _actor_stats(),
        }
        _write_atomically(
            self.output / f"{shard.name}.json", srsly.json_dumps(summary, indent=2).encode("utf8")
        )
        return summary

    def _pipe(self, docs: list[Doc]) -> list[tuple[Doc, str | None]]:
        """Each doc annotated, with None; where the batch raises, each doc run alone, with its error."""
        # A component that raised may have left annotations on the docs (spaCy's ner keeps preset
        # entities), so the docs run alone are copies taken before.
        copies = [doc.copy() for doc in docs]
        try:
            return [(doc, None) for doc in self.nlp.pipe(docs, batch_size=self.batch_size)]
        except Exception:
            return [self._one(doc) for doc in copies]

    def _one(self, doc: Doc) -> tuple[Doc, str | None]:
        try:
            return self.nlp(doc), None
        except Exception as error:
            return doc, f"the pipeline raised {type(error).__name__}: {str(error)[:300]}"


def _actor_stats() -> dict[str, Any]:
    """Who ran the shard, and the peak memory of that process so far."""
    import ray
    import torch

    context = ray.get_runtime_context()
    stats = {
        "actor": context.get_actor_id(),
        "node": ray.util.get_node_ip_address(),
        "pid": os.getpid(),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,  # KiB on Linux
    }
    if torch.cuda.is_initialized():
        stats["peak_gpu_bytes"] = torch.cuda.max_memory_allocated()
    return stats


def _write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary name, then rename: readers see the whole file or none."""
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}{_TMP}")
    with tmp.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)


# --- The driver --------------------------------------------------------------------------------------------


def annotate(
    pipeline: str | Path,
    input_path: str | Path,
    output: str | Path,
    *,
    num_actors: int = 1,
    gpus_per_actor: float = 0.0,
    cpus_per_actor: float = 1.0,
    batch_size: int = 16,
    shard_size: int = 100,
    text_key: str = "text",
    address: str | None = None,
) -> dict[str, Any]:
    """Annotate ``input_path`` with ``pipeline`` into ``output`` on Ray; returns the manifest.

    Without ``address`` a Ray instance is started on this machine and stopped at the end, unless
    this process is already connected to one, which is then used (and left running); with an
    address, the cluster there is joined. The pipeline, the input and OUTPUT must be at the same
    paths on every node (or the pipeline installed there as a package). A rerun on the same OUTPUT
    annotates only the shards not yet written; an OUTPUT written for another input, pipeline,
    ``shard_size`` or ``text_key`` is refused.
    """
    started = time.perf_counter()
    _check_options(
        num_actors=num_actors,
        gpus_per_actor=gpus_per_actor,
        cpus_per_actor=cpus_per_actor,
        batch_size=batch_size,
        shard_size=shard_size,
        text_key=text_key,
        address=address,
    )
    ray = _import_ray()
    pipeline_path = _pipeline_path(pipeline)
    plan = plan_input(input_path, shard_size=shard_size)
    output = Path(output)
    identity = {
        "layout": LAYOUT_VERSION,
        "input": {"path": str(plan.path.resolve()), "fingerprint": plan.fingerprint},
        "pipeline": {"path": str(pipeline_path), "fingerprint": _fingerprint_folder(pipeline_path)},
        "shard_size": shard_size,
        "text_key": text_key,
    }
    _open_output(output, identity, plan)
    done = {shard.name: _read_summary(output, shard) for shard in plan.shards}
    done = {name: summary for name, summary in done.items() if summary is not None}
    todo = [shard for shard in plan.shards if shard.name not in done]
    fresh: dict[str, dict[str, Any]] = {}
    ray_ready = finished = time.perf_counter()
    if todo:
        owns_ray = not ray.is_initialized()
        if owns_ray:
            _init_ray(ray, address)
        ray_ready = time.perf_counter()
        try:
            _check_resources(
                ray, local=address is None, num_actors=num_actors, cpus=cpus_per_actor, gpus=gpus_per_actor
            )
            actor_kwargs = {
                "pipeline": str(pipeline_path),
                "root": str(plan.root.resolve()),
                "output": str(output.resolve()),
                "text_key": text_key,
                "batch_size": batch_size,
                "gpu": gpus_per_actor > 0,
            }
            for summary in _run_shards(
                ray, todo, actor_kwargs, num_actors=num_actors, cpus=cpus_per_actor, gpus=gpus_per_actor
            ):
                fresh[summary["shard"]] = summary
        finally:
            if owns_ray:
                ray.shutdown()
        finished = time.perf_counter()
    docs, tokens = sum(s["docs"] for s in fresh.values()), sum(s["tokens"] for s in fresh.values())
    seconds = finished - ray_ready
    timings = {
        "seconds": round(time.perf_counter() - started, 3),
        # Planning (a pass over the input), then starting Ray; the actors start within annotate_seconds.
        "startup_seconds": round(ray_ready - started, 3),
        "annotate_seconds": round(seconds, 3),
        "docs": docs,
        "tokens": tokens,
        "docs_per_second": round(docs / seconds, 3) if seconds else 0.0,
        "tokens_per_second": round(tokens / seconds, 1) if seconds else 0.0,
    }
    manifest = _manifest(identity, plan, {**done, **fresh}, fresh=fresh, timings=timings)
    _write_atomically(output / MANIFEST, srsly.json_dumps(manifest, indent=2).encode("utf8"))
    return manifest


def _check_options(
    *,
    num_actors: int,
    gpus_per_actor: float,
    cpus_per_actor: float,
    batch_size: int,
    shard_size: int,
    text_key: str,
    address: str | None,
) -> None:
    """Bad option values, named as the command line spells them."""
    for option, value, expected, ok in (
        ("--num-actors", num_actors, "an int >= 1", _is_int(num_actors) and num_actors >= 1),
        ("--batch-size", batch_size, "an int >= 1", _is_int(batch_size) and batch_size >= 1),
        ("--shard-size", shard_size, "an int >= 1", _is_int(shard_size) and shard_size >= 1),
        (
            "--gpus-per-actor",
            gpus_per_actor,
            "a number >= 0 (0.5: two actors share a GPU)",
            _is_number(gpus_per_actor) and gpus_per_actor >= 0,
        ),
        (
            "--cpus-per-actor",
            cpus_per_actor,
            "a number > 0",
            _is_number(cpus_per_actor) and cpus_per_actor > 0,
        ),
        ("--text-key", text_key, "a non-empty string", isinstance(text_key, str) and text_key != ""),
        (
            "--address",
            address,
            "a Ray cluster address such as 'head-node:6379' or 'ray://head-node:10001'",
            address is None or (isinstance(address, str) and address.strip() != ""),
        ),
    ):
        if not ok:
            raise ValueError(Errors.LF186.format(option=option, expected=expected, value=value))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value  # not NaN


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401  (ray[data]: pyarrow and the rest of Ray Data)
    except ImportError as error:
        raise ImportError(Errors.LF180.format(error=error)) from None
    return ray


def _pipeline_path(pipeline: str | Path) -> Path:
    """The folder ``spacy.load`` reads: a path, or an installed package's."""
    path = Path(pipeline)
    if path.exists():
        if not (path / "config.cfg").is_file():
            problem = "the folder has no config.cfg" if path.is_dir() else "it is a file, not a folder"
            raise ValueError(Errors.LF181.format(pipeline=str(pipeline), problem=problem))
        return path.resolve()
    if spacy.util.is_package(str(pipeline)):
        return spacy.util.get_package_path(str(pipeline))
    problem = "no such folder, and no installed package of that name"
    raise ValueError(Errors.LF181.format(pipeline=str(pipeline), problem=problem))


def _fingerprint_folder(path: Path) -> str:
    """SHA-256 of a pipeline's file names and bytes (compiled Python caches left out)."""
    hasher = hashlib.sha256()
    files = sorted(
        (file for file in path.rglob("*") if file.is_file() and "__pycache__" not in file.parts),
        key=lambda file: file.relative_to(path).as_posix(),
    )
    for file in files:
        hasher.update(file.relative_to(path).as_posix().encode("utf8") + b"\0")
        with file.open("rb") as data:
            hasher.update(hashlib.file_digest(data, "sha256").digest())
    return hasher.hexdigest()


def _open_output(output: Path, identity: dict[str, Any], plan: InputPlan) -> None:
    """Refuse an OUTPUT of another run; start a new one with its identity in the manifest."""
    if output.exists() and not output.is_dir():
        raise ValueError(Errors.LF185.format(output=output, problem="it is a file"))
    if plan.path.is_dir() and output.resolve().is_relative_to(plan.path.resolve()):
        problem = f"it lies inside INPUT {plan.path}, whose files would change under it"
        raise ValueError(Errors.LF185.format(output=output, problem=problem))
    manifest_path = output / MANIFEST
    if manifest_path.exists():
        manifest = srsly.read_json(manifest_path)
        for key, what in (
            ("layout", "the OUTPUT layout version"),
            ("input", "the input (sha256 of its names and bytes)"),
            ("pipeline", "the pipeline (sha256 of its files)"),
            ("shard_size", "--shard-size"),
            ("text_key", "--text-key"),
        ):
            old, new = manifest.get(key), identity[key]
            if isinstance(new, dict):
                old, new = (old or {}).get("fingerprint"), new["fingerprint"]
            if old != new:
                raise ValueError(Errors.LF184.format(output=output, what=what, old=old, new=new))
        for tmp in output.glob(f"*{_TMP}"):  # left by a killed run
            tmp.unlink(missing_ok=True)
        return
    if output.exists() and any(output.iterdir()):
        problem = f"it holds files but no {MANIFEST}, so this command did not write it"
        raise ValueError(Errors.LF185.format(output=output, problem=problem))
    output.mkdir(parents=True, exist_ok=True)
    begun = {**identity, "complete": False, "counts": {"records": plan.n_records, "shards": len(plan.shards)}}
    _write_atomically(manifest_path, srsly.json_dumps(begun, indent=2).encode("utf8"))


def _read_summary(output: Path, shard: Shard) -> dict[str, Any] | None:
    """A written shard's summary; None while the shard is not complete (no summary, or no DocBin)."""
    summary, docs = output / f"{shard.name}.json", output / f"{shard.name}.spacy"
    return srsly.read_json(summary) if summary.exists() and docs.exists() else None


def _init_ray(ray: Any, address: str | None) -> None:
    if address is None:
        # "local": a new instance on this machine, whatever RAY_ADDRESS or an earlier `ray start` say.
        ray.init(address="local")
        return
    try:
        ray.init(address=address)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise ValueError(Errors.LF188.format(address=address, error=error)) from None


def _check_resources(ray: Any, *, local: bool, num_actors: int, cpus: float, gpus: float) -> None:
    """A pool larger than the machine waits forever for its actors: an error on this machine, a
    warning on a cluster (which may be autoscaling)."""
    total = ray.cluster_resources()
    for name, per_actor, option in (("CPU", cpus, "--cpus-per-actor"), ("GPU", gpus, "--gpus-per-actor")):
        have, need = total.get(name, 0.0), num_actors * per_actor
        if need > have:
            message = Errors.LF189.format(
                where="This machine" if local else "The cluster",
                have=f"{have:g}",
                resource=name,
                num_actors=num_actors,
                per_actor=f"{per_actor:g}",
                need=f"{need:g}",
                option=option,
            )
            if local:
                raise ValueError(message)
            warnings.warn(message, stacklevel=3)


def _run_shards(
    ray: Any, todo: list[Shard], actor_kwargs: dict[str, Any], *, num_actors: int, cpus: float, gpus: float
) -> Iterator[dict[str, Any]]:
    """Each shard's summary as its actor finishes it, while Ray Data shows its progress bars."""
    # One row a block: a block is what a task gets, what a retry redoes and what a failure drops.
    shards = ray.data.from_items([shard.to_row() for shard in todo], override_num_blocks=len(todo))
    with warnings.catch_warnings():
        # Ray 2.60 has no named parameter for actor restarts and task retries, only
        # **ray_remote_args, which it marks as deprecated.
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
        results = shards.map_batches(
            _ShardAnnotator,
            fn_constructor_kwargs=actor_kwargs,
            batch_size=1,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=num_actors, max_tasks_in_flight_per_actor=1),
            num_cpus=cpus,
            num_gpus=gpus or None,
            max_restarts=-1,
            max_task_retries=MAX_ATTEMPTS - 1,
        )
    # A shard whose retries ran out is dropped instead of aborting the run; the manifest lists
    # its records as failed.
    results.context.max_errored_blocks = -1
    try:
        for row in results.iter_rows():
            yield json.loads(row["summary"])
    except ray.exceptions.RayActorError as error:
        # Actors that die in their constructor abort the run; Ray's message ends with the cause.
        cause = str(error).strip().splitlines()[-1]
        raise RuntimeError(Errors.LF187.format(pipeline=actor_kwargs["pipeline"], error=cause)) from None


def _manifest(
    identity: dict[str, Any],
    plan: InputPlan,
    summaries: dict[str, dict[str, Any]],
    *,
    fresh: dict[str, dict[str, Any]],
    timings: dict[str, Any],
) -> dict[str, Any]:
    """What OUTPUT holds and in which order, what failed and why; this run's speed and actors."""
    shards: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    n_lost = 0
    for shard in plan.shards:
        entry = {
            "file": f"{shard.name}.spacy",
            "sources": list(shard.sources),
            "first_line": shard.first_line,
        }
        summary = summaries.get(shard.name)
        if summary is None:
            n_lost += 1
            error = (
                f"the worker annotating this shard died on each of its {MAX_ATTEMPTS} attempts (killed, or "
                "out of memory: lower --batch-size or --shard-size, or give the actors more memory); the "
                "shard was not written, and a rerun of the same command tries it again"
            )
            ids = _record_ids(shard, plan.root)
            failed.extend({"line": line, "source": source, "error": error} for source, line in ids)
            shards.append({**entry, "written": False, "docs": 0, "failed": shard.n_records})
        else:
            failed.extend(summary["failed"])
            shards.append(
                {**entry, "written": True, "docs": summary["docs"], "failed": len(summary["failed"])}
            )
    return {
        **identity,
        "complete": n_lost == 0,
        "counts": {
            "records": plan.n_records,
            "written": sum(shard["docs"] for shard in shards),
            "failed": len(failed),
            "tokens": sum(summary["tokens"] for summary in summaries.values()),
            "shards": len(plan.shards),
            "shards_written": len(summaries),
            "shards_resumed": len(summaries) - len(fresh),
            "shards_lost": n_lost,
        },
        "timings": timings,
        "actors": _actors(fresh.values()),
        "shards": shards,
        "failed": failed,
    }


def _actors(summaries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per actor of this run: its shards, docs, busy seconds and peak memory (across restarts)."""
    actors: dict[str, dict[str, Any]] = {}
    for summary in summaries:
        stats = summary["actor"]
        actor = actors.setdefault(
            stats["actor"],
            {
                "actor": stats["actor"],
                "node": stats["node"],
                "pids": [],
                "shards": 0,
                "docs": 0,
                "seconds": 0.0,
            },
        )
        if stats["pid"] not in actor["pids"]:
            actor["pids"].append(stats["pid"])
        actor["shards"] += 1
        actor["docs"] += summary["docs"]
        actor["seconds"] = round(actor["seconds"] + summary["seconds"], 3)
        for key in ("peak_rss_bytes", "peak_gpu_bytes"):
            if key in stats:
                actor[key] = max(actor.get(key, 0), stats[key])
    return list(actors.values())


def read_annotated(output: str | Path, vocab: Vocab) -> Iterator[Doc]:
    """The docs of an ``annotate`` OUTPUT in input order: shards as the manifest lists them, each
    in the order of its records. Load the pipeline first (``spacy.load``), so that
    ``doc._.longformer`` and its other extensions are registered, and pass ``nlp.vocab``."""
    output = Path(output)
    for shard in srsly.read_json(output / MANIFEST).get("shards", []):
        if shard["written"]:
            yield from DocBin().from_disk(output / shard["file"]).get_docs(vocab)
