localrules:
    combine_stages,
    collect_results,
    plot_training_curves,
    table_figures,
    varcon_temperature,
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
        paper_csv=[
            report(f"{RESULTS}/tables/paper_{paper}.csv", caption="../report/paper_tables.rst", category="Tables")
            for paper in config_papers()
        ],
        paper_md_tex=expand(f"{RESULTS}/tables/paper_{{paper}}.{{ext}}", paper=config_papers(), ext=["md", "tex"]),
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
        png=figure_pngs(["training_curves"]),
        copies=figure_copies(["training_curves"]),
    params:
        runs_root=f"{RESULTS}/runs",
        formats=FIGURE_FORMATS_ARG,
    log:
        f"{RESULTS}/logs/plot_training_curves.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot_training_curves.tsv"
    conda:
        "../../envs/clbench.yaml"
    shell:
        "clbench report curves --runs-root {params.runs_root:q} --out {output.png:q} --formats {params.formats}"
        " {input:q} > {log:q} 2>&1"


rule html_report:
    input:
        tables=rules.collect_results.output,
        curves=f"{RESULTS}/figures/training_curves.png",
        figures=paper_figures,
        temperature=[f"{RESULTS}/figures/varcon_temperature.png", f"{RESULTS}/tables/varcon_temperature.csv"],
        samples=all_dataset_previews,
    output:
        f"{RESULTS}/report/index.html",
    params:
        # without slurm: where the jobs ran changes no result, so it neither re-runs nor re-hashes the report
        config_json=as_json({key: value for key, value in config.items() if key != "slurm"}),
        results=lambda wildcards, output: os.path.dirname(os.path.dirname(output[0])),
    log:
        f"{RESULTS}/logs/html_report.log",
    conda:
        "../../envs/clbench.yaml"
    shell:
        "clbench report html --results {params.results:q} --config-json {params.config_json:q}"
        " --out {output:q} > {log:q} 2>&1"


rule table_figures:
    input:
        tables=rules.collect_results.output,
        run_metrics=convergence_metrics,
    output:
        pngs=figure_pngs(TABLE_FIGURES),
        copies=figure_copies(TABLE_FIGURES),
    params:
        runs_root=f"{RESULTS}/runs",
        experiments=as_json(config["experiments"]),
        tables_dir=lambda wildcards, input: os.path.dirname(input.tables[0]),
        out_dir=lambda wildcards, output: os.path.dirname(output[0]),
        formats=FIGURE_FORMATS_ARG,
    log:
        f"{RESULTS}/logs/table_figures.log",
    benchmark:
        f"{RESULTS}/benchmarks/table_figures.tsv"
    conda:
        "../../envs/clbench.yaml"
    shell:
        "clbench report table-figures --tables-dir {params.tables_dir:q} --runs-root {params.runs_root:q}"
        " --experiments {params.experiments:q} --run-metrics {input.run_metrics:q}"
        " --out-dir {params.out_dir:q} --formats {params.formats} > {log:q} 2>&1"


rule varcon_temperature:
    input:
        metrics=lambda wildcards: [f"{d}/metrics.csv" for d in varcon_runs()],
        runs=lambda wildcards: [f"{d}/run.json" for d in varcon_runs()],
    output:
        png=figure_pngs(["varcon_temperature"]),
        copies=figure_copies(["varcon_temperature"]),
        table=f"{RESULTS}/tables/varcon_temperature.csv",
    params:
        runs_root=f"{RESULTS}/runs",
        formats=FIGURE_FORMATS_ARG,
    log:
        f"{RESULTS}/logs/varcon_temperature.log",
    benchmark:
        f"{RESULTS}/benchmarks/varcon_temperature.tsv"
    conda:
        "../../envs/clbench.yaml"
    shell:
        "clbench report varcon-temperature --runs-root {params.runs_root:q} --table {output.table:q}"
        " --out {output.png:q} --formats {params.formats} {input.metrics:q} > {log:q} 2>&1"


rule clear_figures:
    input:
        model=lambda wildcards: f"{run_dir(*clear_figure_run())}/model.pt",
        meta=lambda wildcards: f"{dataset_dir(config['experiments'][clear_figure_run()[0]]['dataset'])}/meta.json",
    output:
        pngs=figure_pngs(CLEAR_FIGURES),
        copies=figure_copies(CLEAR_FIGURES),
    params:
        seed=lambda wildcards: clear_figure_run()[2],
        out_dir=lambda wildcards, output: os.path.dirname(output[0]),
        formats=FIGURE_FORMATS_ARG,
    resources:
        **rule_resources(config, "clear_figures"),
    log:
        f"{RESULTS}/logs/clear_figures.log",
    benchmark:
        f"{RESULTS}/benchmarks/clear_figures.tsv"
    conda:
        "../../envs/clbench.yaml"
    shell:
        "clbench report clear-figures --model {input.model:q} --dataset $(dirname {input.meta:q})"
        " --seed {params.seed} --out-dir {params.out_dir:q} --formats {params.formats} > {log:q} 2>&1"


rule mi_simulation:
    output:
        png=figure_pngs(["clear_mi_simulation"]),
        copies=figure_copies(["clear_mi_simulation"]),
    params:
        formats=FIGURE_FORMATS_ARG,
    resources:
        **rule_resources(config, "mi_simulation"),
    log:
        f"{RESULTS}/logs/mi_simulation.log",
    benchmark:
        f"{RESULTS}/benchmarks/mi_simulation.tsv"
    conda:
        "../../envs/clbench.yaml"
    shell:
        "clbench report mi-simulation --out {output.png:q} --formats {params.formats} > {log:q} 2>&1"
