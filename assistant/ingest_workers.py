"""Parallel ingest: documents split over N processes that read, chunk and embed (one encoder each).

The documents are split by a stable hash of their id (:func:`assistant.ingest.in_shard`), so each
worker reads every input but chunks and embeds only its share. Workers hand finished batches of
whole documents back to the ingesting process, which alone writes to the store (an embedded Chroma
store has one writer; with a Chroma server, several machines each run their own
``assistant ingest --workers N`` on different inputs). Writing, stale-chunk removal, pruning and the
revision bump are the ones of :func:`assistant.ingest.ingest`, so an interrupted parallel ingest
is finished by the next ingest exactly like a serial one.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
from pathlib import Path

from assistant.ingest import _DONE, QUEUE_BATCHES, IngestLimits, IngestReport, _Reader, embed_batch
from assistant.settings import Settings
from assistant.store import StoredDocument

POLL_S = 0.2


def _work(paths: list[Path], settings: Settings, stored: dict[str, StoredDocument],
          shard: tuple[int, int], results, bundled: Path | None, limits: IngestLimits | None) -> None:
    """One worker process: read its share of the documents, chunk and embed them, send batches."""
    import assistant  # noqa: F401  (offline environment in the new process)
    from assistant.embedding import encoder_for

    try:
        encoder = encoder_for(settings)
        report = IngestReport()
        batches: queue.Queue = queue.Queue(maxsize=QUEUE_BATCHES)
        reader = _Reader(paths, settings, stored, report, batches, bundled, limits, shard=shard)
        reader.start()
        while True:
            batch = batches.get()
            if batch is _DONE:
                break
            if isinstance(batch, BaseException):
                raise batch
            embed_batch(batch, encoder)
            results.put(("batch", shard[0], batch, reader.pending))
        results.put(("done", shard[0], report, (reader.kept, reader.scopes)))
    except BaseException as exc:  # noqa: BLE001 (reported to the ingesting process, which raises it)
        results.put(("error", shard[0], f"{type(exc).__name__}: {exc}", None))


class WorkerPool:
    """N worker processes behind the interface of the serial reader thread (start, out, stop, join,
    pending, kept, scopes): ``out`` yields embedded batches, then the end marker or an exception."""

    def __init__(self, paths: list[Path], settings: Settings, stored: dict[str, StoredDocument],
                 report: IngestReport, workers: int, bundled: Path | None = None,
                 limits: IngestLimits | None = None) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a process that holds threads
        threads = settings.embed_threads or max(1, (os.cpu_count() or 1) // workers)
        worker_settings = settings.with_overrides(embed_threads=threads)
        self.results = context.Queue(maxsize=workers * QUEUE_BATCHES)
        self.out: queue.Queue = queue.Queue(maxsize=QUEUE_BATCHES)
        self.processes = [
            context.Process(target=_work, args=(paths, worker_settings, stored, (i, workers), self.results, bundled, limits),
                            name=f"ingest-worker-{i}", daemon=True)
            for i in range(workers)
        ]
        self.report = report
        self.stop = threading.Event()
        self.kept: set[str] = set()  # as the serial reader's: what pruning keeps, and where it prunes
        self.scopes: list[str] = []
        self._pending = [0] * workers
        self._collector = threading.Thread(target=self._collect, name="ingest-collector", daemon=True)

    @property
    def pending(self) -> int:
        return sum(self._pending)

    def start(self) -> None:
        for process in self.processes:
            process.start()
        self._collector.start()

    def _collect(self) -> None:
        running = set(range(len(self.processes)))
        try:
            while running and not self.stop.is_set():
                try:
                    kind, worker, payload, extra = self.results.get(timeout=POLL_S)
                except queue.Empty:
                    dead = [i for i in running if self.processes[i].exitcode not in (None, 0)]
                    if dead:
                        raise RuntimeError(f"ingest worker {dead[0]} died (exit code "
                                           f"{self.processes[dead[0]].exitcode}); run the ingest again")
                    continue
                if kind == "error":
                    raise RuntimeError(f"ingest worker {worker}: {payload}")
                if kind == "batch":
                    self._pending[worker] = extra
                    self._put(payload)
                else:
                    self._merge(payload, extra)
                    running.discard(worker)
            self._put(_DONE)
        except BaseException as exc:  # noqa: BLE001 (handed to the ingesting thread, which raises it)
            self._put(exc)

    def _merge(self, report: IngestReport, read: tuple[set[str], list[str]]) -> None:
        """Add a finished worker's report; files that failed to load are reported by every worker once."""
        mine = self.report
        mine.added += report.added
        mine.updated += report.updated
        mine.unchanged += report.unchanged
        known = {str(p) for p in mine.failed}
        mine.failed += [p for p in report.failed if str(p) not in known]
        mine.warnings += [w for w in report.warnings if w not in mine.warnings]
        for source, count in report.loaded.items():
            mine.loaded[source] = mine.loaded.get(source, 0) + count
        kept, scopes = read
        self.kept.update(kept)
        self.scopes += [s for s in scopes if s not in self.scopes]

    def _put(self, item) -> None:
        while not self.stop.is_set():
            try:
                self.out.put(item, timeout=POLL_S)
                return
            except queue.Full:
                continue

    def join(self) -> None:
        """Stop the workers (at once if the ingest was interrupted) and wait for them."""
        self._collector.join()
        for process in self.processes:
            if process.is_alive():
                process.terminate()
            process.join()
        self.results.close()
