# Input and output functions of the report rules (report.smk); the lint wants functions apart from rules.


FIGURE_FORMATS = config["report"]["figure_formats"]
FIGURE_FORMATS_ARG = ",".join(FIGURE_FORMATS)  # the figure commands' --formats


def figure_pngs(names):
    """The figures' PNGs: the HTML report embeds them, `snakemake --report` shows them."""
    return [report(f"{RESULTS}/figures/{name}.png", caption=f"../report/{name}.rst", category="Figures") for name in names]


def figure_copies(names):
    """The same figures in report.figure_formats' other formats (PDF for papers), written by the same job."""
    return [f"{RESULTS}/figures/{name}.{fmt}" for name in names for fmt in FIGURE_FORMATS if fmt != "png"]


def config_papers():
    """The papers with an experiment in the config: one table per paper (clbench.report.paper_tables)."""
    return sorted({p for exp in config["experiments"].values()
                   for p in ([exp["paper"]] if isinstance(exp["paper"], str) else exp["paper"])})


def varcon_runs(wildcards=None):
    """Run directories of the methods of objective varcon: their metrics.csv log the adaptive temperature t2."""
    return [run_dir(*run) for run in experiment_runs() if method_spec(run[0], run[1])["objective"] == "varcon"]
