localrules:
    aggregate_probes,
    plot_training_curves,
    html_report,


rule aggregate_probes:
    input:
        all_probe_results,
    output:
        csv=report(
            f"{RESULTS}/tables/linear_probe.csv",
            caption="../report/linear_probe.rst",
            category="Tables",
        ),
        md=f"{RESULTS}/tables/linear_probe.md",
    params:
        runs_root=f"{RESULTS}/runs",
    log:
        f"{RESULTS}/logs/aggregate_probes.log",
    benchmark:
        f"{RESULTS}/benchmarks/aggregate_probes.tsv"
    conda:
        "../../envs/clbench.yaml"
    shell:
        "clbench report table --runs-root {params.runs_root:q} --csv {output.csv:q} --md {output.md:q}"
        " {input:q} > {log:q} 2>&1"


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
        table=f"{RESULTS}/tables/linear_probe.csv",
        curves=f"{RESULTS}/figures/training_curves.png",
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
