localrules:
    collect_results,
    plot_training_curves,
    html_report,


rule collect_results:
    input:
        all_evaluations,
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
    params:
        runs_root=f"{RESULTS}/runs",
        experiments=as_json(config["experiments"]),
    log:
        f"{RESULTS}/logs/collect_results.log",
    benchmark:
        f"{RESULTS}/benchmarks/collect_results.tsv"
    conda:
        "../../envs/clbench.yaml"
    shell:
        "clbench report collect --runs-root {params.runs_root:q} --experiments {params.experiments:q}"
        " --out-dir $(dirname {output.metrics:q}) {input:q} > {log:q} 2>&1"


rule plot_training_curves:
    input:
        all_metrics,
    output:
        report(
            f"{RESULTS}/figures/training_curves.png",
            caption="../report/training_curves.rst",
            category="Figures",
        ),
    params:
        runs_root=f"{RESULTS}/runs",
    log:
        f"{RESULTS}/logs/plot_training_curves.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot_training_curves.tsv"
    conda:
        "../../envs/clbench.yaml"
    shell:
        "clbench report curves --runs-root {params.runs_root:q} --out {output:q} {input:q} > {log:q} 2>&1"


rule html_report:
    input:
        tables=rules.collect_results.output,
        curves=f"{RESULTS}/figures/training_curves.png",
        figures=paper_figures,
        samples=all_dataset_previews,
    output:
        f"{RESULTS}/report/index.html",
    params:
        config_json=as_json(config),
        results=lambda wildcards, output: os.path.dirname(os.path.dirname(output[0])),
    log:
        f"{RESULTS}/logs/html_report.log",
    conda:
        "../../envs/clbench.yaml"
    shell:
        "clbench report html --results {params.results:q} --config-json {params.config_json:q}"
        " --out {output:q} > {log:q} 2>&1"
