# Sweeps (clbench.sweeps): the trials train and evaluate as the ordinary runs of an experiment named as the
# sweep; this job selects the best trial on validation data and records its test numbers.

localrules:
    select_sweep,


rule select_sweep:
    input:
        lambda wildcards: sweeps.trial_evaluations(config, wildcards.sweep),
    output:
        selection=f"{RESULTS}/sweeps/{{sweep}}/selection.json",
        trials=report(f"{RESULTS}/sweeps/{{sweep}}/trials.csv", caption="../report/sweep.rst", category="Sweeps"),
    wildcard_constraints:
        sweep=wf.name_regex(sweeps.sweep_experiments(config)),
    params:
        spec=lambda wildcards: as_json(sweeps.selection_spec(config, wildcards.sweep)),
        code=rule_code.command("sweep select"),
    log:
        f"{RESULTS}/logs/select_sweep/{{sweep}}.log",
    conda:
        "../../envs/clbench.yaml"
    shell:
        "clbench sweep select --spec {params.spec:q} --out-dir $(dirname {output.selection:q}) {input:q}"
        " > {log:q} 2>&1"
