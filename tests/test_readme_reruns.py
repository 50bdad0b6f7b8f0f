"""The README's re-run commands ("Re-running a stage") work as written: each, dry-run, forces the jobs of the
rules it names (or the job of the file it names), in the configuration it runs."""

import re
import shlex
import subprocess

import pytest

from conftest import REPO, snakemake_exe


def readme_rerun_commands() -> list[str]:
    section = (REPO / "README.md").read_text().split("## Re-running a stage")[1].split("\n## ")[0]
    lines = [line.split("  #")[0].strip() for line in section.splitlines() if line.strip().startswith("snakemake ")]
    return [line for line in lines if " -R " in line or " --forcerun " in line]


def forced_jobs(stdout: str) -> list[tuple[str, str]]:
    """(rule, output) of each job a dry run plans with reason 'Forced execution'."""
    jobs = []
    for block in re.split(r"\n(?=\s*(?:local)?rule \w+:\n)", stdout):
        m = re.match(r"\s*(?:local)?rule (\w+):\n", block)
        if m and re.search(r"reason: .*Forced execution", block):
            jobs.append((m.group(1), (re.search(r"output: (.*)", block) or [None, ""])[1]))
    return jobs


def test_the_readme_has_rerun_commands_for_rules_and_files():
    commands = readme_rerun_commands()
    assert any(" -R " in c and "configs/paper.yaml" not in c for c in commands)
    assert any(" --forcerun " in c for c in commands) and any("configs/paper.yaml" in c for c in commands)


@pytest.mark.parametrize("command", readme_rerun_commands())
def test_a_readme_rerun_command_forces_the_jobs_it_names(tmp_path, command):
    args = shlex.split(command)[1:]
    # the command runs in the repository; here in an empty directory, with the repository's config files
    configs = [str(REPO / "config.yaml")]
    if "--configfile" in args:
        i = args.index("--configfile")
        configs.append(str(REPO / args.pop(i + 1)))
        args.pop(i)
    proc = subprocess.run([snakemake_exe(), "-n", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
                           "--configfile", *configs, *[a for a in args if a != "-n"]],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    forced = forced_jobs(proc.stdout)
    if " -R " in command:
        rules = [a for a in command.split(" -R ")[1].split(" -")[0].split()]
        assert {rule for rule, _ in forced} == set(rules), (command, sorted({r for r, _ in forced}))
    else:
        target = command.split(" --forcerun ")[1].split()[0]
        assert [rule for rule, output in forced if target in output], command
