"""What a training run shows while it runs: ``metrics.csv`` after every epoch, ``progress.json``, and an
optional logger.

Every trainer hands each finished epoch's rows to a :class:`ProgressRecorder`, which rewrites the run's
``metrics.csv`` atomically (so a reader never sees half a file) and ``progress.json`` (epoch k of n,
the last row, the process that trains it), and passes the row's numbers to the configured logger
(``logger: tensorboard``: event files under ``<run>/tensorboard``). ``progress.json`` lies outside
the rule's declared outputs, so it outlives a failed job: ``clbench status`` reads it (and the log)
to say where each run stands. Used as a context manager around a run: a run that fails records the
error there before the exception goes on; a finished one removes it.
"""

from __future__ import annotations

import math
import os
import socket
import time
from pathlib import Path

from clbench.io import write_json, write_text

LOGGERS = ("none", "tensorboard")
PROGRESS = "progress.json"
TENSORBOARD_DIR = "tensorboard"


def rows_to_csv(rows: list[dict]) -> str:
    """The rows as CSV, with the union of their columns in first-seen order."""
    import csv
    import io

    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def open_logger(name: str, log_dir: Path, resume_step: int = 0):
    """The logger ``name`` writing to ``log_dir`` (None for ``none``). A resumed run drops the events
    past the epoch it resumes from, so a re-run epoch is not plotted twice."""
    if name == "none":
        return None
    if name != "tensorboard":
        raise ValueError(f"logger must be one of {LOGGERS}, got {name!r}")
    from clbench.extras import require

    require("tensorboard", "logger: tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(log_dir), purge_step=resume_step + 1 if resume_step else None)


class ProgressRecorder:
    """The per-epoch record of one run in ``out_dir`` (rank 0 only: the caller passes ``enabled``)."""

    def __init__(self, out_dir: str | Path, epochs: int, *, unit: str = "epoch", logger: str = "none",
                 start: int = 0, rows: list[dict] | None = None, enabled: bool = True):
        """``start``, ``rows``: where a resumed run continues, and the rows of the epochs it has (written
        to metrics.csv at once, so a watcher sees them before the next epoch ends)."""
        self.out = Path(out_dir)
        self.epochs, self.unit, self.enabled = int(epochs), unit, enabled
        self.started = time.time()
        self.writer = open_logger(logger, self.out / TENSORBOARD_DIR, start) if enabled else None
        if enabled:
            if rows:
                write_text(self.out / "metrics.csv", rows_to_csv(rows))
            self._progress(start, rows[-1] if rows else {}, state="running")

    def _progress(self, done: int, last: dict, state: str, error: str | None = None) -> None:
        info = {"state": state, self.unit: done, f"{self.unit}s": self.epochs, "unit": self.unit,
                "last": {k: v for k, v in last.items() if isinstance(v, (int, float)) and math.isfinite(v)},
                "started": self.started, "updated": time.time(), "host": socket.gethostname(), "pid": os.getpid()}
        if error is not None:
            info["error"] = error
        write_json(self.out / PROGRESS, info)

    def record(self, rows: list[dict], done: int | None = None) -> None:
        """After an epoch (or an evaluation step): all rows so far to metrics.csv, the last to the logger."""
        if not self.enabled or not rows:
            return
        last = rows[-1]
        done = int(done if done is not None else last.get(self.unit, len(rows)))
        write_text(self.out / "metrics.csv", rows_to_csv(rows))
        self._progress(done, last, state="running")
        if self.writer is not None:
            for key, value in last.items():
                if key != self.unit and isinstance(value, (int, float)) and math.isfinite(value):
                    self.writer.add_scalar(key, value, done)
            self.writer.flush()

    def failed(self, error: BaseException) -> None:
        """Record why the run stopped (the exception), keeping the last epoch it reached."""
        if not self.enabled:
            return
        try:
            from clbench.io import read_json

            previous = read_json(self.out / PROGRESS)
        except (OSError, ValueError):
            previous = {}
        self._progress(int(previous.get(self.unit, 0)), previous.get("last", {}), state="failed",
                       error=f"{type(error).__name__}: {error}".strip()[:500])
        self.close()

    def finished(self) -> None:
        """The run wrote its outputs: progress.json has served its purpose."""
        if self.enabled:
            (self.out / PROGRESS).unlink(missing_ok=True)
        self.close()

    def __enter__(self) -> "ProgressRecorder":
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if error is None:
            self.finished()
        else:
            self.failed(error)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
