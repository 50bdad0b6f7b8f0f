"""The HTML report in a real browser (headless Chromium): at 1,280 px nothing is wider than the window
(wide tables scroll inside their own container), every figure loads, every in-page link has its target
and the columns of sentences are wide enough to read. Skipped where no Chromium is installed
(``apt-get install chromium``; ``.ci/run`` installs it)."""

import html as html_lib
import json
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from clbench.papers import PAPERS
from clbench.report import figures, html, tables

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless_shell")
WIDTH = 1280

# Runs after the page has loaded and writes what it found into the page, for --dump-dom to print:
# elements that stick out of the window (outside a scroll container), images that did not load, in-page
# links without a target, and columns of sentences narrower than 150 px.
PROBE = """
<script>
window.addEventListener('load', () => {
  const width = window.innerWidth, out = {width: width, scrollWidth: document.documentElement.scrollWidth,
                                          wide: [], images: [], links: [], narrow: [], imageCount: 0, elements: 0};
  const scrolls = (el) => { for (let p = el.parentElement; p; p = p.parentElement) {
      const o = getComputedStyle(p).overflowX; if (o === 'auto' || o === 'scroll' || o === 'hidden') return true; }
    return false; };
  const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    (el.className && typeof el.className === 'string' ? '.' + el.className.replace(/ /g, '.') : '') +
    ' "' + (el.textContent || '').trim().slice(0, 60) + '"';
  for (const el of document.body.querySelectorAll('*')) {
    if (el.id === 'layout-findings') continue;
    out.elements++;
    const r = el.getBoundingClientRect();
    if ((r.right > width + 1 || r.left < -1) && r.width > 0 && !scrolls(el)) out.wide.push([name(el), r.left, r.right]);
  }
  for (const img of document.images) { out.imageCount++;
    if (!img.complete || img.naturalWidth === 0) out.images.push(img.alt || img.src.slice(0, 60)); }
  for (const a of document.querySelectorAll('a[href^="#"]')) {
    const id = decodeURIComponent(a.getAttribute('href').slice(1));
    if (!document.getElementById(id)) out.links.push(a.getAttribute('href')); }
  for (const td of document.querySelectorAll('td.wide')) {
    if (td.textContent.trim().length > 40 && td.getBoundingClientRect().width < 150) out.narrow.push(name(td)); }
  const pre = document.createElement('pre'); pre.id = 'layout-findings'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


def chromium() -> str | None:
    return next((path for b in BROWSERS if (path := shutil.which(b))), None)


@pytest.fixture(scope="module")
def browser():
    exe = chromium()
    if exe is None:
        pytest.skip("no Chromium installed (apt-get install chromium)")
    return exe


def layout_findings(browser: str, page, tmp_path) -> dict:
    """The probe's findings for the HTML file ``page``, loaded at :data:`WIDTH` px."""
    probed = tmp_path / "probed.html"
    text = page.read_text()
    probed.write_text(text.replace("</body>", PROBE + "</body>") if "</body>" in text else text + PROBE)
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
           f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={WIDTH},900", "--virtual-time-budget=5000",
           "--dump-dom", probed.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    found = re.search(r'<pre id="layout-findings">(.*?)</pre>', done.stdout, re.S)
    assert found, f"the probe did not run (rc {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(html_lib.unescape(found.group(1)))


# ---------------------------------------------------------------------------- a small results tree

EXPERIMENTS = {
    "clear_styled": {"title": "Styled digits", "paper": "clear", "dataset": "styled_digits", "seeds": [0, 1, 2],
                     "methods": ["clear", "clear_neg", "clear_tc", "clear_l1out"]},
    "subembed_digits_on_photos": {"title": "Digits on photographs", "paper": "subembed",
                                  "dataset": "digits_on_photos", "seeds": [0, 1, 2],
                                  "methods": ["subembed_plain", "subembed_hess", "subembed_ortho"]},
    "varcon_digits": {"title": "Styled digits, supervised", "paper": "varcon", "dataset": "styled_digits",
                      "seeds": [0, 1, 2], "methods": ["cnn", "supcon", "varcon"], "baseline": "cnn"},
}
METRICS = {
    "clear_styled": ["linear_top1", "linear_auroc", "mlp_top1", "gmig", "mig", "probe_style_latent_y_top1",
                     "probe_content_latent_style_top1", "probe_style_latent_style_top1"],
    "subembed_digits_on_photos": [f"probe_{r}_{f}" for r in ("r", "r0", "r1", "gap") for f in ("digit", "background")],
    "varcon_digits": ["linear_top1", "knn_top1"],
}


def results_tree(root):
    """Runs of three papers' experiments (three seeds), collected, with training curves (one method's
    loss diverging over orders of magnitude), a health table with a failed method and a dataset preview."""
    rng = np.random.default_rng(0)
    runs = root / "runs"
    evaluations, logs, health = [], [], []
    for exp, cfg in EXPERIMENTS.items():
        for i, method in enumerate(cfg["methods"]):
            for seed in cfg["seeds"]:
                d = runs / exp / method / f"seed{seed}"
                d.mkdir(parents=True)
                metrics = {m: float(rng.uniform(0.1, 0.9)) for m in METRICS[exp]}
                (d / "evaluation.json").write_text(json.dumps({"metrics": metrics}))
                epochs = np.arange(1, 6)
                loss = 300.0 / epochs if exp == "clear_styled" else 5.0 - 0.3 * epochs
                if method == "clear_l1out":
                    loss = 10.0 ** (epochs + seed)
                frame = {"epoch": epochs, "loss": loss + i}
                if exp == "varcon_digits":
                    frame["val_knn_top1"] = 0.4 + 0.05 * epochs
                pd.DataFrame(frame).to_csv(d / "metrics.csv", index=False)
                (d / "run.json").write_text(json.dumps({"device": "cpu"}))
                evaluations.append(d / "evaluation.json")
                logs.append(d / "metrics.csv")
                failed = method in ("supcon", "clear_l1out")
                health.append({"experiment": exp, "paper": cfg["paper"], "method": method, "seed": seed, "stage": "",
                               "status": "failed" if failed else "ok",
                               "reasons": "loss ends at 5.53, within 1% of ln(255) = 5.54, the loss of constant "
                                          "embeddings (collapse)" if failed else ""})
    tables.write_tables(tables.collect_evaluations(evaluations, runs, EXPERIMENTS), root / "tables")
    pd.DataFrame(health).to_csv(root / "tables" / "health.csv", index=False)
    figures.training_curves(logs, runs, root / "figures" / "training_curves.png")
    figures.empty_figure(root / "data" / "styled_digits" / "samples.png", "samples")
    return root


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    results = results_tree(tmp_path_factory.mktemp("browser") / "results")
    out = results / "report" / "index.html"
    html.build_report(results, {"scale": "tiny", "experiments": EXPERIMENTS}, out, PAPERS)
    return out


def test_the_report_fits_a_1280px_window_and_every_figure_and_link_works(browser, report, tmp_path):
    found = layout_findings(browser, report, tmp_path)
    assert found["width"] == WIDTH
    assert found["elements"] > 100 and found["imageCount"] >= 2
    assert found["scrollWidth"] <= found["width"], f"the page scrolls sideways: {found['wide'][:5]}"
    assert found["wide"] == [], "elements wider than the window outside a scroll container"
    assert found["images"] == [], "figures that did not load"
    assert found["links"] == [], "in-page links without a target"
    assert found["narrow"] == [], "columns of sentences too narrow to read"


def test_the_probe_finds_what_it_looks_for(browser, tmp_path):
    """A page with each fault: the probe reports each one (and the scrolled wide table is no fault)."""
    page = tmp_path / "faulty.html"
    page.write_text("<!doctype html><html><body><div style='width:1800px'>too wide</div>"
                    "<div style='overflow-x:auto'><table><tr><td style='min-width:2000px'>scrolls</td></tr></table>"
                    "</div><img alt='broken' src='data:image/png;base64,AAAA'><a href='#nowhere'>link</a>"
                    "<table style='width:100px'><tr><td class='wide'>" + "a sentence of a claim " * 5 +
                    "</td></tr></table></body></html>")
    found = layout_findings(browser, page, tmp_path)
    assert found["scrollWidth"] > WIDTH
    assert [w[0] for w in found["wide"]] == ['div "too wide"']
    assert found["images"] == ["broken"] and found["links"] == ["#nowhere"] and len(found["narrow"]) == 1
