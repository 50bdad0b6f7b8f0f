"""`clbench <command>`: the single entry point every Snakemake rule calls.

Imports are lazy: a command imports torch only if it needs it (job start-up dominates at tiny scale).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time


def _seeds_arg(text: str) -> list[int]:
    """``0`` or ``0,1,2``: a job may train or evaluate several seeds, one after another (seeds_per_job: all)."""
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a seed or comma-separated seeds, got {text!r}") from None
    if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"seeds are distinct non-negative integers, got {text!r}")
    return seeds


def _for_seed(path: str, seed: int, seeds: list[int]) -> str:
    """A per-seed path: ``{seed}`` in ``path`` replaced; required when one job runs several seeds."""
    if "{seed}" in path:
        return path.replace("{seed}", str(seed))
    if len(seeds) > 1:
        raise SystemExit(f"{path!r}: with several seeds ({seeds}) every output path contains {{seed}}")
    return path


def _json_arg(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON: {e}") from e
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def cmd_data_build(a):
    from clbench.data.build import build_dataset

    meta = build_dataset(a.spec, a.out, a.resources)
    logging.info("wrote %s: sizes %s, hash %s", a.out, meta.get("sizes"), meta.get("hash", "")[:12])


def cmd_data_show(a):
    from clbench.data.show import show

    show(a.dataset, a.out, split=a.split, by=a.by)


def cmd_data_preview_augmentation(a):
    from clbench.data.augment import preview_dataset

    preview_dataset(a.dataset, a.out, a.recipes.split(","), split=a.split)


def cmd_data_corrupt(a):
    from clbench.data.corruptions import corrupt_dataset

    corrupt_dataset(a.dataset, a.out, a.corruption, a.severity, seed=a.seed, official_root=a.official_root or None)


def cmd_train(a):
    from clbench.train.trainers import trainer_for

    for seed in a.seeds:
        sampler = None
        if a.clusters:
            import numpy as np

            from clbench.data.samplers import ClusterBatchSampler, stage_cluster_ids

            labels = a.spec.get("stage_labels", "joint")
            ids = stage_cluster_ids([np.load(_for_seed(p, seed, a.seeds)) for p in a.clusters], labels)
            sampler = ClusterBatchSampler(ids, batch_size=a.spec.get("batch_size", 128), seed=seed,
                                          order=a.spec.get("cluster_order", "shuffled"))
            logging.info("MCL stage %d: batches drawn from %d clusters (%s)", len(a.clusters), len(np.unique(ids)),
                         labels)
        logging.info("seed %d", seed)
        spec = {**a.spec, "init_from": _for_seed(a.spec["init_from"], seed, a.seeds)} if "init_from" in a.spec else a.spec
        trainer_for(spec)(spec, a.dataset, _for_seed(a.out, seed, a.seeds),
                            _for_seed(a.checkpoint_dir, seed, a.seeds), seed=seed, device=a.device,
                            threads=a.threads, batch_sampler=sampler, health=a.health, logger=a.logger)


def cmd_cluster(a):
    import numpy as np

    from clbench.data import dataset_dir
    from clbench.evaluate.embed import embed
    from clbench.io import atomic_path
    from clbench.models.checkpoint import load_model
    from clbench.train import device as devices
    from clbench.train.mcl import kmeans

    images = dataset_dir.load(a.dataset, "train")["x"]
    for seed in a.seeds:
        dev = devices.setup(a.device, a.threads, seed)
        feats = embed(load_model(_for_seed(a.model, seed, a.seeds), dev), images, dev).numpy()
        ids = kmeans(feats, a.k, seed=seed)
        with atomic_path(_for_seed(a.out, seed, a.seeds)) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, ids)
        logging.info("seed %d: %d clusters; sizes min %d max %d", seed, a.k, np.bincount(ids, minlength=a.k).min(),
                     np.bincount(ids).max())


def cmd_mcl_combine(a):
    from clbench.train.mcl import combine_stages

    for seed in a.seeds:
        combine_stages([_for_seed(stage, seed, a.seeds) for stage in a.stages], _for_seed(a.out, seed, a.seeds))


def cmd_evaluate_run(a):
    from clbench.evaluate.evaluators import evaluator_for
    from clbench.io import write_json
    from clbench.train import device as devices

    for seed in a.seeds:
        logging.info("seed %d", seed)
        dev = devices.setup(a.device, a.threads, seed)
        model = _for_seed(a.model, seed, a.seeds)
        evaluate = evaluator_for(model)  # by the model's domain: images, graphs, sentences
        result = evaluate(model, a.dataset, a.spec, seed=seed, device=dev,
                          metrics_csv=a.metrics and _for_seed(a.metrics, seed, a.seeds),
                          probe_out=a.probe_out and _for_seed(a.probe_out, seed, a.seeds) or None, health=a.health)
        # what it was given: the protocol card reads it
        write_json(_for_seed(a.out, seed, a.seeds), {**result, "spec": a.spec})


def cmd_evaluate_corruption(a):
    from clbench.evaluate.runner import evaluate_corruption_cell
    from clbench.io import write_json
    from clbench.train import device as devices

    dev = devices.setup(a.device, a.threads, a.seed)
    write_json(a.out, evaluate_corruption_cell(a.model, a.probe, a.corrupted, device=dev))


def cmd_evaluate_merge(a):
    from clbench.evaluate.cells import merge_evaluation

    result = merge_evaluation(a.clean, a.cells, a.out)
    logging.info("%d corruption cells; mean top-1 %.4f", len(a.cells), result["metrics"]["mean_corruption_top1"])


def cmd_report_collect(a):
    from clbench.papers import PAPERS
    from clbench.report.paper_tables import write_paper_tables
    from clbench.report.tables import collect_evaluations, summary_table, write_tables

    from clbench.sweeps import selected_runs

    selected = selected_runs([p for p in a.sweep_selections.split(",") if p], a.runs_root)
    tables = collect_evaluations(a.inputs, a.runs_root, a.experiments, selected)
    write_tables(tables, a.out_dir)
    write_paper_tables(summary_table(tables["metrics"]), a.experiments, a.out_dir, PAPERS)


def cmd_sweep_select(a):
    from clbench.sweeps import select_sweep

    out = select_sweep(a.spec, a.inputs, a.out_dir)
    if out["selected"] is None:
        logging.warning("sweep %s: no trial selected, all %d excluded (trials.csv says why)", out["sweep"],
                        out["n_trials"])
    else:
        logging.info("sweep %s: selected %s on validation %s (%d trials, %d excluded)", out["sweep"],
                     out["selected"], out["rule"]["metric"], out["n_trials"], out["n_excluded"])


def _add_sweep_commands(sub) -> None:
    sw = sub.add_parser("sweep", help="hyper-parameter sweeps").add_subparsers(dest="sweep_command", required=True)
    se = sw.add_parser("select", help="the best trial on validation data (trials with a failed run excluded); "
                                      "writes selection.json and trials.csv")
    se.add_argument("inputs", nargs="+", help="the trials' .../<trial>/seed<s>/evaluation.json")
    se.add_argument("--spec", type=_json_arg, required=True, help="the sweep's selection spec, as JSON")
    se.add_argument("--out-dir", required=True)
    se.set_defaults(fn=cmd_sweep_select)


def _formats_arg(text: str) -> list[str]:
    # One comma-separated value, not nargs="+": a list option would swallow the positional inputs after it.
    from clbench.report.figures import FIGURE_FORMATS

    formats = [f.strip() for f in text.split(",") if f.strip()]
    unknown = sorted(set(formats) - set(FIGURE_FORMATS))
    if unknown or not formats:
        raise argparse.ArgumentTypeError(f"unknown figure formats {unknown or text!r}; known: {', '.join(FIGURE_FORMATS)}")
    return formats


def _figure_command(fn):
    """A figure command that also writes every figure in ``--formats`` (one drawing, one file per format)."""
    import functools

    @functools.wraps(fn)
    def run(a):
        from clbench.report.figures import figure_formats

        with figure_formats(a.formats):
            return fn(a)

    return run


@_figure_command
def cmd_report_curves(a):
    from clbench.report.figures import training_curves

    training_curves(a.inputs, a.runs_root, a.out)


@_figure_command
def cmd_report_figure(a):
    from pathlib import Path

    from clbench.papers import ResultFiles, find_figure

    figure = find_figure(a.name)
    figure.draw(ResultFiles(Path(a.results), tuple(Path(p) for p in a.inputs), a.experiments), Path(a.out))


def cmd_run(a):
    import os

    from clbench.config.files import preflight
    from clbench.errors import refusals

    with refusals():
        preflight(a.snakemake_args)
    os.execvp("snakemake", ["snakemake", *a.snakemake_args])


def cmd_analyse(a):
    from pathlib import Path

    from clbench.papers import ResultFiles, find_analysis, resolve

    analysis = find_analysis(a.name)
    files = ResultFiles(Path(a.results), tuple(Path(p) for p in a.inputs), params=a.params, threads=a.threads)
    resolve(analysis.function)(files, Path(a.out))


def cmd_report_protocol(a):
    from clbench.papers import PAPERS
    from clbench.report.paper import ExperimentRecord
    from clbench.report.protocol import card_counts, write_protocol_card

    rows = write_protocol_card(a.inputs, ExperimentRecord.from_dict(a.planned), a.out, PAPERS)
    logging.info("protocol card of %s: %s", a.planned["experiment"], card_counts(rows))


def cmd_report_html(a):
    from clbench.papers import PAPERS
    from clbench.report.html import build_report

    build_report(a.results, a.config_json, a.out, PAPERS)


def _invocation_args(p: argparse.ArgumentParser) -> None:
    """The config arguments of a snakemake invocation, meaning what they mean there."""
    p.add_argument("--configfile", "--configfiles", dest="configfiles", nargs="+", action="extend", default=[],
                   help="config files composed over config.yaml, in order (as snakemake's --configfile)")
    p.add_argument("--config", dest="config_args", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="settings over them, as snakemake's --config (also papers=[...], experiments=[...], "
                        "methods=[...] to select what runs)")
    p.add_argument("--directory", default=".", help="the workflow's directory (holding config.yaml)")


def _resolved(a):
    from clbench.ops.invocation import resolve_invocation
    from clbench.errors import ConfigError

    try:
        return resolve_invocation(a.configfiles, a.config_args, a.directory)
    except ConfigError as e:
        raise SystemExit(f"{e}\nNo job was started.") from None


def cmd_config_show(a):
    from clbench.config.composition import describe

    cfg, origins = _resolved(a)
    if a.yaml:
        import yaml

        print(yaml.safe_dump(cfg, sort_keys=False), end="")
    else:
        print(describe(cfg, origins))


def cmd_plan(a):
    from clbench.ops.plan import plan_text

    cfg, _ = _resolved(a)
    print(plan_text(cfg))


def _add_operator_commands(sub) -> None:
    """The commands an operator runs before a workflow: what it resolves to, and what it will cost."""
    cf = sub.add_parser("config", help="the workflow's resolved configuration").add_subparsers(
        dest="config_command", required=True)
    sh = cf.add_parser("show", help="every value of the resolved configuration with its origin (a file, --config "
                                    "or the schema's default)")
    _invocation_args(sh)
    sh.add_argument("--yaml", action="store_true", help="the resolved configuration as YAML, without origins")
    sh.set_defaults(fn=cmd_config_show)
    pl = sub.add_parser("plan", help="jobs, expected GPU- and CPU-hours, SLURM time limits and disk, per experiment "
                                     "and in total, before anything runs")
    _invocation_args(pl)
    pl.set_defaults(fn=cmd_plan)


def cmd_status(a):
    from clbench.ops import status

    runs = status.collect(a.results)
    print(status.as_json(runs) if a.json else status.summary(runs, a.results, show_done=a.all))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clbench", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)
    _add_sweep_commands(sub)
    _add_operator_commands(sub)

    data = sub.add_parser("data", help="build or inspect datasets").add_subparsers(dest="data_command", required=True)
    b = data.add_parser("build", help="materialise one dataset directory from its config spec")
    b.add_argument("--spec", type=_json_arg, required=True,
                   help="the dataset's config entry, as JSON, with what its experiments need of it (needs)")
    b.add_argument("--out", required=True)
    b.add_argument("--resources", default="resources", help="where downloads go")
    b.set_defaults(fn=cmd_data_build)
    s = data.add_parser("show", help="write a PNG grid of samples per class / factor")
    s.add_argument("dataset")
    s.add_argument("--out", required=True)
    s.add_argument("--split", default="train")
    s.add_argument("--by", default="y", help="'y' or a factor name")
    s.set_defaults(fn=cmd_data_show)
    pa = data.add_parser("preview-augmentation", help="write a PNG of augmented views per recipe of a few images")
    pa.add_argument("dataset")
    pa.add_argument("--recipes", required=True, help="comma-separated names of clbench.data.augment.RECIPES")
    pa.add_argument("--out", required=True)
    pa.add_argument("--split", default="train")
    pa.set_defaults(fn=cmd_data_preview_augmentation)
    cr = data.add_parser("corrupt", help="the test split under one (corruption, severity)")
    cr.add_argument("dataset")
    cr.add_argument("--corruption", required=True)
    cr.add_argument("--severity", type=int, required=True)
    cr.add_argument("--seed", type=int, default=0)
    cr.add_argument("--official-root", default="",
                    help="official CIFAR-10-C / CIFAR-100-C folder, used for a CIFAR-10 / CIFAR-100 test split")
    cr.add_argument("--out", required=True)
    cr.set_defaults(fn=cmd_data_corrupt)

    t = sub.add_parser("train", help="pretrain one method on one dataset, one seed or several in turn")
    t.add_argument("--spec", type=_json_arg, required=True, help="the method's config entry, as JSON")
    t.add_argument("--dataset", required=True)
    t.add_argument("--out", required=True, help="the run directory; with several seeds a template with {seed}")
    t.add_argument("--checkpoint-dir", required=True, help="with several seeds a template with {seed}")
    t.add_argument("--seed", dest="seeds", type=_seeds_arg, default=[0], help="a seed, or seeds as 0,1,2")
    t.add_argument("--device", default="auto")
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--clusters", nargs="*", default=[], help="MCL: cluster ids (.npy) of the previous stages")
    t.add_argument("--health", type=_json_arg, default={},
                   help="the config's health: thresholds, as JSON (unset keys: clbench.health.DEFAULTS)")
    t.add_argument("--logger", choices=["none", "tensorboard"], default=os.environ.get("CLBENCH_LOGGER", "none"),
                   help="also log each epoch's numbers (tensorboard: <run>/tensorboard); default: $CLBENCH_LOGGER "
                        "(the workflow sets it from the config's logger), else none")
    t.set_defaults(fn=cmd_train)

    c = sub.add_parser("cluster", help="MCL: K-means on a stage's normalised training features")
    c.add_argument("--model", required=True)
    c.add_argument("--dataset", required=True)
    c.add_argument("--k", type=int, required=True)
    c.add_argument("--seed", dest="seeds", type=_seeds_arg, default=[0],
                   help="a seed, or seeds as 0,1,2 (--model and --out then templates with {seed})")
    c.add_argument("--device", default="auto")
    c.add_argument("--threads", type=int, default=1)
    c.add_argument("--out", required=True)
    c.set_defaults(fn=cmd_cluster)

    mc = sub.add_parser("mcl-combine", help="MCL: the concatenated multi-stage model of one run")
    mc.add_argument("--stages", nargs="+", required=True, help="stage run directories, in order")
    mc.add_argument("--out", required=True)
    mc.add_argument("--seed", dest="seeds", type=_seeds_arg, default=[0],
                    help="seeds as 0,1,2 to combine several runs in turn (--stages and --out templates with {seed})")
    mc.set_defaults(fn=cmd_mcl_combine)

    ev = sub.add_parser("evaluate", help="evaluate frozen encoders").add_subparsers(dest="eval_command", required=True)
    pr = ev.add_parser("run", help="every configured evaluation of one trained run (probes, kNN, gMIG, ...), or of "
                                   "several seeds' runs in turn (paths as templates with {seed})")
    pr.add_argument("--model", required=True)
    pr.add_argument("--metrics", help="the run's metrics.csv (for convergence speed)")
    pr.add_argument("--dataset", required=True)
    pr.add_argument("--spec", type=_json_arg, default={})
    pr.add_argument("--seed", dest="seeds", type=_seeds_arg, default=[0], help="a seed, or seeds as 0,1,2")
    pr.add_argument("--device", default="auto")
    pr.add_argument("--threads", type=int, default=1)
    pr.add_argument("--out", required=True)
    pr.add_argument("--probe-out", default="", help="also save the fitted linear probe here (for the per-cell jobs)")
    pr.add_argument("--health", type=_json_arg, default={},
                    help="the config's health: thresholds and the experiment's ood flag, as JSON")
    pr.set_defaults(fn=cmd_evaluate_run)
    co = ev.add_parser("corruption", help="one corruption cell: the run's saved probe on one corrupted test split")
    co.add_argument("--model", required=True)
    co.add_argument("--probe", required=True, help="the probe.pt the run's evaluation saved")
    co.add_argument("--corrupted", required=True, help="the corrupted split's directory (clbench data corrupt)")
    co.add_argument("--seed", type=int, default=0)
    co.add_argument("--device", default="auto")
    co.add_argument("--threads", type=int, default=1)
    co.add_argument("--out", required=True)
    co.set_defaults(fn=cmd_evaluate_corruption)
    me = ev.add_parser("merge", help="a run's clean evaluation plus its corruption cells -> its evaluation.json")
    me.add_argument("--clean", required=True)
    me.add_argument("--cells", nargs="+", required=True, help="the cells' JSON rows, in table order")
    me.add_argument("--out", required=True)
    me.set_defaults(fn=cmd_evaluate_merge)

    rep = sub.add_parser("report", help="tables, figures and the HTML report").add_subparsers(dest="report_command",
                                                                                             required=True)
    figs = argparse.ArgumentParser(add_help=False)  # options of every figure command
    figs.add_argument("--formats", type=_formats_arg, default=["png"],
                      help="comma-separated (png,pdf): also write each figure in these formats, beside the PNG")
    tb = rep.add_parser("collect", help="every run's evaluation.json into long tables, aggregated over seeds")
    tb.add_argument("inputs", nargs="+")
    tb.add_argument("--runs-root", required=True)
    tb.add_argument("--experiments", type=_json_arg, required=True, help="the config's experiments, as JSON")
    tb.add_argument("--sweep-selections", default="", help="comma-separated selection.json of the sweeps: each "
                                                             "selected trial's runs are reported as the sweep's method")
    tb.add_argument("--out-dir", required=True)
    tb.set_defaults(fn=cmd_report_collect)
    cu = rep.add_parser("curves", parents=[figs], help="training curves figure")
    cu.add_argument("inputs", nargs="+")
    cu.add_argument("--runs-root", required=True)
    cu.add_argument("--out", required=True)
    cu.set_defaults(fn=cmd_report_curves)
    fg = rep.add_parser("figure", parents=[figs], help="one of the papers' figures, drawn from result files")
    fg.add_argument("name", help="the figure's name (results/figures/<name>.png)")
    fg.add_argument("inputs", nargs="*", help="the files it reads, as the workflow lists them")
    fg.add_argument("--results", required=True, help="the results directory")
    fg.add_argument("--experiments", type=_json_arg, default={}, help="the config's experiments, as JSON")
    fg.add_argument("--out", required=True)
    fg.set_defaults(fn=cmd_report_figure)
    pc = rep.add_parser("protocol", help="an experiment's protocol card: each setting, its value and its source")
    pc.add_argument("inputs", nargs="+", help="the runs' run.json and evaluation.json and the dataset's meta.json")
    pc.add_argument("--planned", type=_json_arg, required=True,
                    help="the experiment's record from the configuration, as JSON (what the files do not record)")
    pc.add_argument("--out", required=True)
    pc.set_defaults(fn=cmd_report_protocol)
    ht = rep.add_parser("html", help="the HTML report")
    ht.add_argument("--results", required=True)
    ht.add_argument("--config-json", type=_json_arg, required=True)
    ht.add_argument("--out", required=True)
    ht.set_defaults(fn=cmd_report_html)

    st = sub.add_parser("status", help="where a workflow's training runs stand: done, running (epoch k of n, loss, "
                                       "images/s, ETA), failed (with the log)")
    st.add_argument("--results", default="results", help="the workflow's results directory")
    st.add_argument("--all", action="store_true", help="also list every finished run")
    st.add_argument("--json", action="store_true", help="one JSON object per run")
    st.set_defaults(fn=cmd_status)

    an = sub.add_parser("analyse", help="one of the papers' analyses: a data file (results/analyses/) that "
                                        "figures plot, computed from models or runs' logs")
    an.add_argument("name", help="the analysis' output file name (results/analyses/<name>)")
    an.add_argument("inputs", nargs="*", help="the files it reads, as the workflow lists them")
    an.add_argument("--results", required=True, help="the results directory")
    an.add_argument("--params", type=_json_arg, default={}, help="the analysis' settings, as JSON")
    an.add_argument("--threads", type=int, default=1)
    an.add_argument("--out", required=True)
    an.set_defaults(fn=cmd_analyse)

    run = sub.add_parser("run", help="snakemake with these arguments, after checking its --configfile files and "
                                     "--config keys (which snakemake reads before the workflow's own checks)")
    run.add_argument("snakemake_args", nargs=argparse.REMAINDER, help="snakemake's arguments")
    run.set_defaults(fn=cmd_run)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["run"]:  # every later argument is snakemake's, options included
        return cmd_run(argparse.Namespace(snakemake_args=[a for a in argv[1:2] if a != "--"] + argv[2:]))
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    t0 = time.time()
    logging.info("clbench %s", " ".join(sys.argv[1:] if argv is None else argv)[:500])
    args.fn(args)
    logging.info("done in %.1f s", time.time() - t0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
