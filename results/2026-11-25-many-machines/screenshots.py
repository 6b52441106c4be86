"""The README's two screenshots: optuna-dashboard on the shared study while the sweep ran, and
the MLflow UI of the tracking server after it finished.

Not part of fersweep: run with Playwright (`pip install playwright` in a venv of its own) and a
system Chromium (Debian's `chromium`), with `make dashboard` on 127.0.0.1:8080 and the tracking
server on 127.0.0.1:5000:

    python screenshots.py dashboard <study id> <out.png>
    python screenshots.py mlflow <experiment id> <out.png>
"""

import sys

from playwright.sync_api import sync_playwright

# Chromium on a machine without outside network: no background connections, no sandbox (root).
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def dashboard(page, study: str) -> None:
    page.goto(f"http://127.0.0.1:8080/dashboard/studies/{study}", wait_until="load")
    page.wait_for_timeout(6000)


def mlflow(page, experiment: str) -> None:
    """The experiment's trial runs in the "Model training" view, best first, as charts of their
    validation macro F1 (per epoch, and the best)."""
    query = (
        "workflowType=machine_learning&searchFilter=tags.kind%20%3D%20%27trial%27"
        "&orderByKey=metrics.%60val%2Fmacro_f1_best%60&orderByAsc=false&startTime=ALL"
        "&lifecycleFilter=Active&modelVersionFilter=All+Runs"
    )
    page.goto(f"http://127.0.0.1:5000/#/experiments/{experiment}/runs?{query}", wait_until="load")
    page.wait_for_timeout(6000)
    for text in ("Got it",):  # first-visit hints
        if page.get_by_text(text).count():
            page.get_by_text(text).first.click()
    close = page.get_by_role("button", name="Close")
    if close.count():  # the assistant's side panel
        close.last.click()
    page.evaluate("document.querySelector('input[value=CHART]').click()")  # the chart view
    page.wait_for_timeout(4000)
    page.get_by_placeholder("Search metric charts").fill("val/macro_f1")
    page.wait_for_timeout(3000)


if __name__ == "__main__":
    kind, ident, out = sys.argv[1:4]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        height = {"dashboard": 1250, "mlflow": 760}[kind]
        page = browser.new_page(viewport={"width": 1500, "height": height})
        {"dashboard": dashboard, "mlflow": mlflow}[kind](page, ident)
        page.screenshot(path=out)
        browser.close()
