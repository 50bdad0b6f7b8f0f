"""Operating a run at scale: what it costs, where it runs, how far it is, and what each job depends on.

:mod:`~clbench.ops.cost` estimates each job's time from ``throughput.json`` and :mod:`~clbench.ops.plan`
prints a configuration's jobs, GPU-hours and downloads; :mod:`~clbench.ops.cluster` turns them into SLURM
resources; :mod:`~clbench.ops.status` reads a running or finished run's progress; :mod:`~clbench.ops.rule_code`
gives each rule the hash of the package code its job runs (:mod:`clbench.code_hash`), so that an edit re-runs
the jobs it changes and nothing else.
"""
