rule evaluate:
    input:
        model=f"{RESULTS}/runs/{{experiment}}/{{method}}/seed{{seed}}/model.pt",
        metrics=f"{RESULTS}/runs/{{experiment}}/{{method}}/seed{{seed}}/metrics.csv",
        meta=dataset_meta,
        corrupted=corrupted_inputs,
    output:
        f"{RESULTS}/runs/{{experiment}}/{{method}}/seed{{seed}}/evaluation.json",
    params:
        spec=evaluation_spec,
        device=config["device"],
    threads: config["train_threads"]
    resources:
        gpu=config["gpus_per_train_job"],
    log:
        f"{RESULTS}/logs/evaluate/{{experiment}}/{{method}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/{{experiment}}/{{method}}/seed{{seed}}.tsv"
    conda:
        "../../envs/clbench.yaml"
    shell:
        "clbench evaluate run --model {input.model:q} --metrics {input.metrics:q} --dataset $(dirname {input.meta:q})"
        " --spec {params.spec:q} --corrupted {input.corrupted:q} --seed {wildcards.seed} --device {params.device}"
        " --threads {threads} --out {output:q} > {log:q} 2>&1"
