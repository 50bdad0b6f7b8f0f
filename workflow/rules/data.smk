rule build_dataset:
    output:
        train=f"{RESULTS}/data/{{dataset}}/train.npz",
        val=f"{RESULTS}/data/{{dataset}}/val.npz",
        test=f"{RESULTS}/data/{{dataset}}/test.npz",
        meta=f"{RESULTS}/data/{{dataset}}/meta.json",
    params:
        code=from_wildcards(rule_code.dataset),
        spec=lambda wildcards: wf.as_json(wf.build_spec(config, wildcards.dataset)),
        resources_dir=config["resources_dir"],
    resources:
        **rule_resources(config, "build_dataset"),
    log:
        f"{RESULTS}/logs/build_dataset/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/build_dataset/{{dataset}}.tsv"
    conda:
        "../../envs/clbench.yaml"
    shell:
        "clbench data build --spec {params.spec:q} --out $(dirname {output.meta:q})"
        " --resources {params.resources_dir:q} > {log:q} 2>&1"


rule show_dataset:
    input:
        meta=f"{RESULTS}/data/{{dataset}}/meta.json",
    output:
        report(
            f"{RESULTS}/data/{{dataset}}/samples.png",
            caption="../report/samples.rst",
            category="Data",
            labels={"dataset": "{dataset}"},
        ),
    params:
        code=rule_code.command("data show"),
    resources:
        **rule_resources(config, "show_dataset"),
    log:
        f"{RESULTS}/logs/show_dataset/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/show_dataset/{{dataset}}.tsv"
    conda:
        "../../envs/clbench.yaml"
    shell:
        "clbench data show $(dirname {input.meta:q}) --out {output:q} > {log:q} 2>&1"


rule preview_augmentation:
    input:
        meta=f"{RESULTS}/data/{{dataset}}/meta.json",
    output:
        report(
            f"{RESULTS}/data/{{dataset}}/augmented_views.png",
            caption="../report/augmented_views.rst",
            category="Data",
            labels={"dataset": "{dataset}", "figure": "augmented views"},
        ),
    params:
        code=rule_code.command("data preview-augmentation"),
        recipes=lambda wildcards: ",".join(wf.dataset_recipes(config, wildcards.dataset)),
    resources:
        **rule_resources(config, "preview_augmentation"),
    log:
        f"{RESULTS}/logs/preview_augmentation/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/preview_augmentation/{{dataset}}.tsv"
    conda:
        "../../envs/clbench.yaml"
    shell:
        "clbench data preview-augmentation $(dirname {input.meta:q}) --recipes {params.recipes:q}"
        " --out {output:q} > {log:q} 2>&1"


rule corrupt_split:
    input:
        meta=f"{RESULTS}/data/{{dataset}}/meta.json",
    output:
        test=f"{RESULTS}/data/{{dataset}}/corrupted/{{corruption}}/s{{severity}}/test.npz",
        meta=f"{RESULTS}/data/{{dataset}}/corrupted/{{corruption}}/s{{severity}}/meta.json",
    params:
        code=rule_code.command("data corrupt"),
        # the official CIFAR-10-C / CIFAR-100-C folder when configured for this dataset, else generated
        official_root=from_wildcards(wf.official_corruption_root),
    wildcard_constraints:
        corruption=r"[a-z_]+",
        severity=r"[1-5]",
    resources:
        **rule_resources(config, "corrupt_split"),
    log:
        f"{RESULTS}/logs/corrupt_split/{{dataset}}/{{corruption}}/s{{severity}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/corrupt_split/{{dataset}}/{{corruption}}/s{{severity}}.tsv"
    conda:
        "../../envs/clbench.yaml"
    shell:
        "clbench data corrupt $(dirname {input.meta:q}) --corruption {wildcards.corruption}"
        " --severity {wildcards.severity} --official-root={params.official_root:q}"
        " --out $(dirname {output.meta:q}) > {log:q} 2>&1"
