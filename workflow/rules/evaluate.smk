rule linear_probe:
    input:
        model=f"{RESULTS}/runs/{{experiment}}/{{method}}/seed{{seed}}/model.pt",
        meta=dataset_meta,
    output:
        f"{RESULTS}/runs/{{experiment}}/{{method}}/seed{{seed}}/linear_probe.json",
    params:
        spec=as_json(config["evaluation"]["linear_probe"]),
        device=config["device"],
    threads: config["train_threads"]
    log:
        f"{RESULTS}/logs/linear_probe/{{experiment}}/{{method}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/linear_probe/{{experiment}}/{{method}}/seed{{seed}}.tsv"
    conda:
        "../../envs/clbench.yaml"
    shell:
        "clbench evaluate probe --model {input.model:q} --dataset $(dirname {input.meta:q})"
        " --spec {params.spec:q} --seed {wildcards.seed} --device {params.device}"
        " --threads {threads} --out {output:q} > {log:q} 2>&1"
