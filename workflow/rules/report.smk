# Tables, the papers' figures and the HTML report: they read result files only. Which figures a
# configuration draws, what each reads and its caption come from the paper modules
# (clbench.papers, through REPORT in common.smk); no paper is named here.

localrules:
    combine_stages,
    combine_stages_seeds,
    collect_results,
    plot_training_curves,
    paper_figure,
    protocol_card,
    html_report,


rule collect_results:
    input:
        evaluations=all_evaluations,
        selections=sweeps.selections(config),
    output:
        metrics=report(
            f"{RESULTS}/tables/metrics.csv",
            caption="../report/metrics.rst",
            category="Tables",
        ),
        summary=report(
            f"{RESULTS}/tables/summary.csv",
            caption="../report/summary.rst",
            category="Tables",
        ),
        summary_md=f"{RESULTS}/tables/summary.md",
        summary_tex=f"{RESULTS}/tables/summary.tex",
        stage_probes=f"{RESULTS}/tables/stage_probes.csv",
        corruptions=f"{RESULTS}/tables/corruptions.csv",
        health=f"{RESULTS}/tables/health.csv",
        paper_csv=[
            report(f"{RESULTS}/tables/paper_{paper}.csv", caption="../report/paper_tables.rst", category="Tables")
            for paper in REPORT.table_papers
        ],
        paper_md_tex=expand(f"{RESULTS}/tables/paper_{{paper}}.{{ext}}", paper=REPORT.table_papers, ext=["md", "tex"]),
    params:
        code=rule_code.all_papers("report collect"),
        runs_root=f"{RESULTS}/runs",
        experiments=as_json(REPORTED["experiments"]),
        selections=",".join(sweeps.selections(config)),
    log:
        f"{RESULTS}/logs/collect_results.log",
    benchmark:
        f"{RESULTS}/benchmarks/collect_results.tsv"
    conda:
        "../../envs/clbench.yaml"
    shell:
        "clbench report collect --runs-root {params.runs_root:q} --experiments {params.experiments:q}"
        " --sweep-selections={params.selections:q} --out-dir $(dirname {output.metrics:q}) {input.evaluations:q}"
        " > {log:q} 2>&1"


rule plot_training_curves:
    input:
        all_metrics,
    output:
        png=report(f"{RESULTS}/figures/training_curves.png", caption="../report/training_curves.rst", category="Figures"),
        copies=[f"{RESULTS}/figures/training_curves.{fmt}" for fmt in REPORT.extra_formats],
    params:
        code=rule_code.command("report curves"),
        runs_root=f"{RESULTS}/runs",
        formats=REPORT.formats_arg,
    log:
        f"{RESULTS}/logs/plot_training_curves.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot_training_curves.tsv"
    conda:
        "../../envs/clbench.yaml"
    shell:
        "clbench report curves --runs-root {params.runs_root:q} --out {output.png:q} --formats {params.formats}"
        " {input:q} > {log:q} 2>&1"


# One job per figure of the papers: it reads the tables, analyses or runs' logs the figure declares.
rule paper_figure:
    input:
        REPORT.figure_inputs,
    output:
        png=report(f"{RESULTS}/figures/{{figure}}.png", caption="../report/figure.rst", category="Figures"),
        copies=[f"{RESULTS}/figures/{{figure}}.{fmt}" for fmt in REPORT.extra_formats],
    wildcard_constraints:
        figure=REPORT.figure_regex(),
    params:
        code=from_wildcards(rule_code.figure),
        results=REPORT.results_dir,
        experiments=as_json(REPORTED["experiments"]),
        formats=REPORT.formats_arg,
        caption=REPORT.figure_caption,
    log:
        f"{RESULTS}/logs/paper_figure/{{figure}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/paper_figure/{{figure}}.tsv"
    conda:
        "../../envs/clbench.yaml"
    shell:
        "clbench report figure {wildcards.figure} {input:q} --results {params.results:q}"
        " --experiments {params.experiments:q} --out {output.png:q} --formats {params.formats} > {log:q} 2>&1"


# One protocol card per experiment: each setting that shapes its numbers, the value its runs recorded
# and where that value comes from (the paper modules' sources); the report shows it beside the table.
rule protocol_card:
    input:
        REPORT.protocol_inputs,
    output:
        report(f"{RESULTS}/tables/protocol_{{experiment}}.csv", caption="../report/protocol.rst", category="Tables"),
    wildcard_constraints:
        experiment=REPORT.experiment_regex(),
    params:
        code=rule_code.all_papers("report protocol"),
        planned=REPORT.protocol_plan,
    log:
        f"{RESULTS}/logs/protocol_card/{{experiment}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/protocol_card/{{experiment}}.tsv"
    conda:
        "../../envs/clbench.yaml"
    shell:
        "clbench report protocol --planned {params.planned:q} --out {output:q} {input:q} > {log:q} 2>&1"


rule html_report:
    input:
        tables=rules.collect_results.output,
        curves=f"{RESULTS}/figures/training_curves.png",
        papers=REPORT.report_inputs,
        samples=all_dataset_previews,
        sweeps=sweeps.selections(config),
    output:
        f"{RESULTS}/report/index.html",
    params:
        code=rule_code.all_papers("report html"),
        # without slurm: where the jobs ran changes no result, so it neither re-runs nor re-hashes the report;
        # without the sweeps' trial experiments: a sweep enters the report through its selection alone
        config_json=as_json({key: value for key, value in REPORTED.items() if key != "slurm"}),
        results=REPORT.results_dir,
    log:
        f"{RESULTS}/logs/html_report.log",
    conda:
        "../../envs/clbench.yaml"
    shell:
        "clbench report html --results {params.results:q} --config-json {params.config_json:q}"
        " --out {output:q} > {log:q} 2>&1"
