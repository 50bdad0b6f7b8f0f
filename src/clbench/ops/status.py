"""Where a workflow's training runs stand: ``clbench status [--results results]``.

Read from the files the runs leave, so it works beside a running workflow, on a login node of a
cluster, or after it stopped: a run is *done* when its ``run.json`` exists; *running* while its
``progress.json`` (:mod:`clbench.train.progress`, rewritten after every epoch) says so and its process
lives (same host) or has written lately (another host); *failed* when ``progress.json`` records an
error, the process is gone, or the job's log ends in a traceback; *started* when only the log exists
(before the first epoch). No torch here.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

# the rules whose logs belong to training runs (results/logs/<rule>/<experiment>/<method>/...)
TRAIN_RULES = ("pretrain", "pretrain_stage")
# a run on another host that has not written for this long, and 3 epochs' time, is reported stalled
STALL_SECONDS = 1800.0
STATES = ("done", "running", "started", "stalled", "failed")


@dataclass
class RunStatus:
    run: str  # experiment/method/seed<s>[/stage<k>]
    state: str
    done: int | None = None  # epochs (or steps) done
    total: int | None = None
    unit: str = "epoch"
    loss: float | None = None
    per_second: float | None = None  # images/s (graphs/s for graphs)
    eta_seconds: float | None = None
    error: str | None = None
    log: str | None = None
    where: str | None = None  # host:pid of a running run
    details: dict = field(default_factory=dict)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _log_of(results: Path, run: str) -> Path | None:
    """The job log of a run: its own (seed<s>.log) or its method's grouped one (seeds.log), per stage for MCL."""
    parts = run.split("/")
    experiment, method, seed = parts[:3]
    stage = parts[3] if len(parts) > 3 else None
    for rule in TRAIN_RULES:
        base = results / "logs" / rule / experiment / method
        candidates = ([base / seed / f"{stage}.log", base / "seeds" / f"{stage}.log"] if stage
                      else [base / f"{seed}.log", base / "seeds.log"])
        for c in candidates:
            if c.exists():
                return c
    return None


def _log_error(log: Path | None) -> str | None:
    """The last line of a traceback in the log (the exception), if the job's log ends in one."""
    if log is None:
        return None
    try:
        lines = [l.rstrip() for l in log.read_text(errors="replace").splitlines() if l.strip()]
    except OSError:
        return None
    if not any(l.startswith("Traceback (most recent call last)") for l in lines):
        return None
    return lines[-1][:300] if lines else "traceback"


def _eta(progress: dict, done: int, total: int) -> float | None:
    if not done or total <= done:
        return 0.0 if total and done >= total else None
    seconds = progress.get("last", {}).get("seconds")
    per_unit = (progress["updated"] - progress["started"]) / done if not seconds or progress.get("unit") == "step" else seconds
    return per_unit * (total - done)


def run_status(results: Path, run: str, now: float | None = None, host: str | None = None) -> RunStatus:
    """The state of one run (``experiment/method/seed<s>[/stage<k>]``)."""
    now, host = now if now is not None else time.time(), host or socket.gethostname()
    folder = results / "runs" / run
    log = _log_of(results, run)
    shown_log = str(log) if log else None
    if (folder / "run.json").exists():
        info = _read_json(folder / "run.json") or {}
        final = info.get("final") or {}
        return RunStatus(run, "done", done=info.get("epochs"), total=info.get("epochs"), loss=final.get("loss"),
                         per_second=final.get("images_per_s") or final.get("graphs_per_s"), log=shown_log,
                         details={"wall_seconds": info.get("wall_seconds"),
                                  "commit": (info.get("provenance") or {}).get("commit_short")})
    progress = _read_json(folder / "progress.json")
    if progress is None:
        error = _log_error(log)
        if error:
            return RunStatus(run, "failed", error=error, log=shown_log)
        return RunStatus(run, "started", log=shown_log)
    if log is not None and log.stat().st_mtime > float(progress.get("updated", 0)) + 1 and \
            progress.get("state") == "failed" and not _log_error(log):
        return RunStatus(run, "started", log=shown_log, details={"restarted after": progress.get("error")})
    unit = progress.get("unit", "epoch")
    done, total = int(progress.get(unit, 0)), int(progress.get(f"{unit}s", 0))
    last = progress.get("last", {})
    status = RunStatus(run, "running", done=done, total=total, unit=unit, loss=last.get("loss"),
                       per_second=last.get("images_per_s") or last.get("graphs_per_s"), log=shown_log,
                       where=f"{progress.get('host')}:{progress.get('pid')}",
                       details={"seconds_running": now - float(progress.get("started", now))})
    if progress.get("state") == "failed":
        status.state, status.error = "failed", progress.get("error") or _log_error(log)
        return status
    error = _log_error(log)
    if error:
        status.state, status.error = "failed", error
    elif progress.get("host") == host and progress.get("pid") and not _alive(int(progress["pid"])):
        status.state, status.error = "failed", "the training process is gone without recording an error (killed?)"
    else:
        silent = now - float(progress.get("updated", now))
        per_unit = (progress.get("updated", now) - progress.get("started", now)) / max(1, done)
        if silent > max(STALL_SECONDS, 3 * per_unit):
            status.state, status.error = "stalled", f"no progress for {_duration(silent)}"
        else:
            status.eta_seconds = _eta(progress, done, total)
    return status


def _run_names(results: Path) -> list[str]:
    """Every run the results and the training logs know of (``.../seeds[/stage<k>]``: a grouped job's log,
    listed only while none of its runs has a folder, e.g. when it failed before its first epoch)."""
    names, grouped = set(), set()
    runs = results / "runs"
    if runs.is_dir():
        for marker in ("run.json", "progress.json", "metrics.csv"):
            for path in runs.rglob(marker):
                rel = path.parent.relative_to(runs).parts
                if len(rel) in (3, 4) and rel[2].startswith("seed"):
                    names.add("/".join(rel))
    for rule in TRAIN_RULES:
        logs = results / "logs" / rule
        for log in logs.rglob("*.log") if logs.is_dir() else ():
            rel = log.relative_to(logs).with_suffix("").parts
            if len(rel) in (3, 4) and rel[2].startswith("seed"):
                (grouped if rel[2] == "seeds" else names).add("/".join(rel))
    methods = {n.split("/seed")[0] for n in names}
    names |= {g for g in grouped if g.split("/seeds")[0] not in methods}
    # an MCL run shows its stages; its combined folder (the whole run's run.json) once it is done
    staged = {n.rsplit("/", 1)[0] for n in names if n.count("/") == 3}
    return sorted(n for n in names if not (n in staged and not (runs / n / "run.json").exists()))


def collect(results: str | Path) -> list[RunStatus]:
    results = Path(results)
    now, host = time.time(), socket.gethostname()
    return [run_status(results, name, now, host) for name in _run_names(results)]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def _number(value: float | None, fmt: str) -> str:
    return "?" if value is None else format(value, fmt)


def describe(status: RunStatus) -> str:
    """One line per run."""
    progress = f"{status.unit} {status.done} of {status.total}" if status.total else ""
    if status.state == "running" and not status.done:
        return (f"{status.unit} 0 of {status.total}: in its first {status.unit} for "
                f"{_duration(status.details.get('seconds_running'))} ({status.where})")
    if status.state in ("running", "stalled"):
        line = (f"{progress}, loss {_number(status.loss, '.4g')}, {_number(status.per_second, '.0f')} per s, "
                f"ETA {_duration(status.eta_seconds)} ({status.where})")
        return line + (f"; {status.error}" if status.error else "")
    if status.state == "failed":
        return ", ".join(p for p in [progress, status.error or "failed", f"log: {status.log or 'none'}"] if p)
    if status.state == "started":
        return f"before its first epoch; log: {status.log}"
    return f"{status.total} {status.unit}s, loss {_number(status.loss, '.4g')}, {_duration(status.details.get('wall_seconds'))}"


def summary(statuses: list[RunStatus], results: str | Path, show_done: bool = False) -> str:
    counts = {s: sum(1 for x in statuses if x.state == s) for s in STATES}
    lines = [f"{len(statuses)} training runs in {results}: "
             + ", ".join(f"{n} {s}" for s, n in counts.items() if n) if statuses else
             f"no training run in {results} yet"]
    for state in STATES:
        chosen = [s for s in statuses if s.state == state]
        if not chosen or (state == "done" and not show_done):
            continue
        lines.append(f"{state}:")
        width = max(len(s.run) for s in chosen)
        lines += [f"  {s.run:<{width}}  {describe(s)}" for s in chosen]
    return "\n".join(lines)


def as_json(statuses: list[RunStatus]) -> str:
    return json.dumps([asdict(s) for s in statuses], indent=2)
