# The papers' analyses: data files under results/analyses/ that figures plot and claims read,
# computed from trained models (e.g. latent swaps and t-SNE), simulations or many runs' logs.
# Which analyses a configuration needs, their inputs and settings come from the paper modules
# (clbench.papers, through REPORT in common.smk); no paper is named here.


rule analyse:
    input:
        REPORT.analysis_inputs,
    output:
        f"{RESULTS}/analyses/{{analysis}}",
    wildcard_constraints:
        analysis=REPORT.analysis_regex(),
    params:
        code=from_wildcards(rule_code.analysis),
        results=REPORT.results_dir,
        settings=REPORT.analysis_params,
    resources:
        **rule_resources(config, "analyse"),
    log:
        f"{RESULTS}/logs/analyse/{{analysis}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/analyse/{{analysis}}.tsv"
    conda:
        "../../envs/clbench.yaml"
    shell:
        "clbench analyse {wildcards.analysis} {input:q} --results {params.results:q} --params {params.settings:q}"
        " --threads {threads} --out {output:q} > {log:q} 2>&1"
