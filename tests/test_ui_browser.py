"""The web UI in a real browser, against real `cmf ui` server processes.

Two stores: the example pipeline's (``example-get-started/demo.py`` run for real: git,
``dvc repro``, ``cmf dvc ingest``, a param change and a second run) and a generated
one of 10,000 executions (``benchmarks.bench_ui.build_store``, bulk writes). Each is
served by ``cmf ui --port 0`` in a subprocess on 127.0.0.1. Debian's chromium is driven
headless by selenium through /usr/bin/chromedriver (nothing is downloaded). The HTTP
checks (status codes, JSON twins) need no browser and always run.

Screenshots of every page go to the test's temporary folder (the path is printed).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from tests.conftest import REQUIRE_SERVICES

from cmfrun.records import Artifact, Execution
from cmfrun.store import connect

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
XSS_NAME = "<script>alert(1)</script>"
XSS_PARAM = '<img src=x onerror="window.__pwned=1"><b>bold</b>'


# -- servers ---------------------------------------------------------------------------------
class UiServer:
    """`cmf ui` in a child process; ``url`` is what it printed (``http://127.0.0.1:PORT/ui/``)."""

    def __init__(self, store: Path, log: Path) -> None:
        self.log = log
        env = dict(os.environ)
        env["PATH"] = str(BIN) + os.pathsep + env.get("PATH", "")
        self.proc = subprocess.Popen(
            [str(BIN / "cmf"), "ui", "-f", str(store), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=open(log, "wb"),
            env=env,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if " at http://" not in line:
            self.stop()
            raise AssertionError(f"cmf ui did not start: {line!r}\n{log.read_text()}")
        self.url = line.split(" at ", 1)[1].split()[0]
        assert self.url.startswith("http://127.0.0.1:") and self.url.endswith("/ui/"), self.url

    def get(self, path: str) -> Tuple[int, str, str]:
        """(status, content type, body) of a GET below the UI's root."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=60) as resp:
                return resp.status, resp.headers.get("content-type", ""), resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("content-type", ""), exc.read().decode()

    def json(self, path: str) -> Any:
        sep = "&" if "?" in path else "?"
        status, ctype, body = self.get(path + sep + "format=json")
        assert status == 200 and ctype.startswith("application/json"), (status, body[:300])
        return json.loads(body)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(scope="session")
def example_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example pipeline's store, made by the demo script (two runs, a param change between)."""
    pytest.importorskip("sklearn", reason="the example needs scikit-learn (example-get-started/requirements.txt)")
    base = tmp_path_factory.mktemp("ui-example")
    env = dict(os.environ)
    env["PATH"] = str(BIN) + os.pathsep + env.get("PATH", "")
    env["XDG_CACHE_HOME"] = str(base / "cache")
    for var in ("CMFRUN_MLMD", "CMFRUN_PIPELINE", "CMFRUN_STAGE", "DVC_STAGE", "DVC_ROOT"):
        env.pop(var, None)
    proc = subprocess.run(
        [sys.executable, str(REPO / "example-get-started" / "demo.py"), str(base / "demo")],
        env=env, capture_output=True, text=True,
    )
    assert proc.returncode == 0, f"demo failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return base / "demo" / "mlmd"


@pytest.fixture(scope="session")
def example_server(example_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    server = UiServer(example_store, tmp_path_factory.mktemp("ui-logs") / "example.log")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[UiServer, Dict[str, Any]]]:
    """10,000 executions (see benchmarks.bench_ui.build_store for what they hold)."""
    from benchmarks.bench_ui import build_store

    base = tmp_path_factory.mktemp("ui-big")
    facts = build_store(base / "mlmd", 10_000)
    server = UiServer(base / "mlmd", base / "server.log")
    yield server, facts
    server.stop()


@pytest.fixture(scope="session")
def xss_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[UiServer, int, int]]:
    """A store whose artifact name and param value are HTML meant to run script."""
    from cmfrun.recorder import ensure_contexts

    base = tmp_path_factory.mktemp("ui-xss")
    store = connect(base / "mlmd")
    pipe, stage = ensure_contexts(store, "xss<i>pipe</i>", "st<b>age</b>")
    execution = Execution(
        "st<b>age</b>",
        name="xss-run",
        properties={
            "Context_Type": stage.name, "Execution_type_name": stage.name, "Pipeline_Type": pipe.name,
            "Pipeline_id": int(pipe.id or 0), "Context_ID": int(stage.id or 0),
            "Execution": "echo '<script>alert(2)</script>'", "Execution_uuid": "xss-run", "Stage": "st<b>age</b>",
        },
        custom={"note": XSS_PARAM},
        state="COMPLETE",
    )
    art = Artifact("Dataset", XSS_NAME, "0123456789abcdef0123456789abcdef", {"url": "x:<script>alert(3)</script>"})
    [eid], [aid] = store.put_lineage([execution], [art], [(0, 0, "OUTPUT", None)], [int(stage.id or 0)])
    store.close()
    server = UiServer(base / "mlmd", base / "server.log")
    yield server, eid, aid
    server.stop()


# -- the browser -----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        msg = "chromium/chromedriver missing: apt-get install -y chromium chromium-driver"
        if REQUIRE_SERVICES:
            pytest.fail(msg + " (CI requires it)")
        pytest.skip(msg)
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the test extra")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    profile = tmp_path_factory.mktemp("chromium-profile")
    for arg in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--window-size=1400,1000",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ui-screenshots")
    print(f"\nUI screenshots: {folder}")
    return folder


def visit(driver: Any, url: str, shots: Path, name: str) -> None:
    """Load ``url``, fail on any console error, save a screenshot as ``name``.png."""
    driver.get_log("browser")  # drop what earlier pages logged
    driver.get(url)
    driver.save_screenshot(str(shots / f"{name}.png"))
    errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    assert not errors, f"console errors on {url}: {errors}"


def cells(driver: Any, column: int) -> List[str]:
    """Texts of one column (1-based) of the executions table."""
    from selenium.webdriver.common.by import By

    return [td.text for td in driver.find_elements(By.CSS_SELECTOR, f"#executions tbody tr td:nth-child({column})")]


def column_index(driver: Any, sort_key: str) -> int:
    from selenium.webdriver.common.by import By

    heads = driver.find_elements(By.CSS_SELECTOR, "#executions thead th")
    for i, th in enumerate(heads, start=1):
        if th.get_attribute("data-sort") == sort_key:
            return i
    raise AssertionError(f"no column {sort_key}")


# -- the example pipeline: HTTP ----------------------------------------------------------------
def test_example_pages_answer_with_html_and_json(example_server: UiServer) -> None:
    status, ctype, body = example_server.get("")
    assert status == 200 and ctype.startswith("text/html") and "get-started" in body
    data = example_server.json("")
    [pipe] = data["pipelines"]
    assert pipe["name"] == "get-started"
    stages = {s["name"]: s["executions"] for s in pipe["stages"]}
    assert stages == {"prepare": 1, "featurize": 1, "train": 2, "evaluate": 2, "train-explicit": 1}
    root = example_server.url.rsplit("/ui/", 1)[0] + "/"
    with urllib.request.urlopen(root, timeout=30) as resp:  # `/` redirects to the UI
        assert resp.url.endswith("/ui/")


def test_bad_input_gives_one_line_4xx_pages(example_server: UiServer) -> None:
    cases = {
        "executions/999999": 404,
        "artifacts/999999": 404,
        "executions?pipeline=no-such-pipeline": 404,
        "executions/abc": 400,
        "executions?pipeline=get-started&page=abc": 400,
        "executions?pipeline=get-started&page=0": 400,
        "executions?pipeline=get-started&page=99": 400,
        "executions?pipeline=get-started&per_page=100000": 400,
        "executions?pipeline=get-started&sort=nonsense": 400,
        "executions?pipeline=get-started&state=sleepy": 400,
        "executions?pipeline=get-started&since=yesterday": 400,
        "executions?pipeline=get-started&param=novalue": 400,
        "lineage?node=artifact:abc": 400,
        "lineage?node=artifact:1&depth=-1": 400,
        "lineage?node=artifact:999999": 404,
        "compare?id=1": 400,
        "compare?id=1&id=999999": 404,
        "artifacts?type=NoSuchType": 404,
        "static/../../etc/passwd": 404,
    }
    for path, want in cases.items():
        status, ctype, body = example_server.get(path)
        assert status == want, (path, status, body[:300])
        assert "Traceback" not in body and "File \"" not in body, path
        if ctype.startswith("text/html"):
            assert 'id="reason"' in body, path
        sep = "&" if "?" in path else "?"
        if not path.startswith("static/"):
            status, ctype, body = example_server.get(path + sep + "format=json")
            assert status == want and ctype.startswith("application/json"), path
            assert json.loads(body)["error"] and "\n" not in json.loads(body)["error"], path


def test_cmf_ui_refuses_a_missing_store(tmp_path: Path) -> None:
    proc = subprocess.run([str(BIN / "cmf"), "ui", "-f", str(tmp_path / "nope"), "--port", "0"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "does not exist" in proc.stderr, proc.stderr
    assert not (tmp_path / "nope").exists()


def test_runs_recorded_while_the_ui_is_up_show_without_a_restart(tmp_path: Path) -> None:
    """`cmfrun --` in another process: its journal is merged (by its merger or the UI's
    per-request merge) and the UI's cache notices the store changed."""
    from cmfrun.recorder import ensure_contexts

    store_path = tmp_path / "mlmd"
    store = connect(store_path)
    ensure_contexts(store, "live", "first")
    store.close()
    server = UiServer(store_path, tmp_path / "server.log")
    try:
        assert [p["executions"] for p in server.json("")["pipelines"]] == [0]
        env = dict(os.environ, PATH=str(BIN) + os.pathsep + os.environ.get("PATH", ""))
        for _ in range(2):
            subprocess.run([str(BIN / "cmfrun"), "-f", str(store_path), "-p", "live", "-s", "step", "--", "true"],
                           cwd=tmp_path, env=env, check=True, capture_output=True)
        _wait(lambda: server.json("")["pipelines"][0]["executions"] == 2, timeout=60)
        page = server.json("executions?pipeline=live&stage=step")
        assert page["total"] == 2 and {r["command"] for r in page["rows"]} == {"true"}
    finally:
        server.stop()


# -- the example pipeline: in the browser ------------------------------------------------------
def test_example_every_page_loads_without_console_errors(example_server: UiServer, browser: Any, shots: Path) -> None:
    from selenium.webdriver.common.by import By

    ex = example_server.json("executions?pipeline=get-started")
    train = sorted(r["id"] for r in ex["rows"] if r["stage"] == "train")
    model = example_server.json("artifacts?type=Model&q=model.pkl")["rows"][0]["id"]
    pages = {
        "pipelines": "",
        "executions": "executions?pipeline=get-started",
        "execution": f"executions/{train[0]}",
        "artifacts": "artifacts",
        "artifact-model": f"artifacts/{model}",
        "lineage": f"lineage?node=artifact:{model}&dir=up&depth=5",
        "compare": f"compare?id={train[0]}&id={train[1]}",
    }
    for name, path in pages.items():
        visit(browser, example_server.url + path, shots, name)
        assert browser.find_element(By.TAG_NAME, "h1").text
    browser.get(example_server.url + f"artifacts/{model}")
    card = browser.find_element(By.ID, "model-card").text
    assert "accuracy" in card and "data/features" in card, card


def test_example_executions_table_counts_and_sorts(example_server: UiServer, example_store: Path, browser: Any, shots: Path) -> None:
    from selenium.webdriver.common.by import By

    store = connect(example_store, create=False, read_only=True)
    expected = len([e for e in store.executions() if e.properties.get("Pipeline_Type") == "get-started"])
    store.close()
    visit(browser, example_server.url + "executions?pipeline=get-started", shots, "executions-example")
    assert int(browser.find_element(By.ID, "total").text) == expected
    ids = [int(x) for x in cells(browser, column_index(browser, "id"))]
    assert len(ids) == expected and ids == sorted(ids, reverse=True)
    browser.find_element(By.CSS_SELECTOR, "th[data-sort=id] a").click()  # now ascending
    ids = [int(x) for x in cells(browser, column_index(browser, "id"))]
    assert ids == sorted(ids)
    # The stage select narrows the table (ui.js submits the form on change).
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element(By.NAME, "stage")).select_by_value("train")
    _wait(lambda: "stage=train" in browser.current_url)
    assert int(browser.find_element(By.ID, "total").text) == 2
    assert set(cells(browser, column_index(browser, "stage"))) == {"train"}


def test_example_lineage_node_click_opens_the_artifact(example_server: UiServer, browser: Any, shots: Path) -> None:
    from selenium.webdriver.common.by import By

    model = example_server.json("artifacts?type=Model&q=model.pkl")["rows"][0]["id"]
    raw = example_server.json("artifacts?q=data/raw.csv")["rows"][0]
    visit(browser, example_server.url + f"lineage?node=artifact:{model}&dir=up&depth=5", shots, "lineage-example")
    node = browser.find_element(By.CSS_SELECTOR, f'a.node[data-key="artifact:{raw["id"]}"]')
    node.click()
    _wait(lambda: browser.current_url.endswith(f"/ui/artifacts/{raw['id']}"))
    assert browser.find_element(By.ID, "artifact-name").text == "data/raw.csv"


def test_example_lineage_highlights_the_path_between_two_nodes(example_server: UiServer, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    model = example_server.json("artifacts?type=Model&q=model.pkl")["rows"][0]["id"]
    raw = example_server.json("artifacts?q=data/raw.csv")["rows"][0]["id"]
    browser.get(example_server.url + f"lineage?node=artifact:{model}&dir=up&depth=5")
    node = browser.find_element(By.CSS_SELECTOR, f'a.node[data-key="artifact:{raw}"]')
    ActionChains(browser).key_down(Keys.SHIFT).click(node).key_up(Keys.SHIFT).perform()
    _wait(lambda: "to=artifact" in browser.current_url)
    on_path = [a.get_attribute("data-key") for a in browser.find_elements(By.CSS_SELECTOR, "a.node.on-path")]
    # model <- train <- features <- featurize <- prepared <- prepare <- raw
    assert on_path and f"artifact:{model}" in on_path and f"artifact:{raw}" in on_path and len(on_path) == 7, on_path
    assert len(browser.find_elements(By.CSS_SELECTOR, "polyline.edge.on-path")) == 6


def test_example_compare_marks_the_changed_param(example_server: UiServer, browser: Any, shots: Path) -> None:
    from selenium.webdriver.common.by import By

    ex = example_server.json("executions?pipeline=get-started&stage=train")
    a, b = sorted(r["id"] for r in ex["rows"])
    # From the second run's page, its link to the previous run of the stage.
    browser.get(example_server.url + f"executions/{b}")
    browser.find_element(By.ID, "compare-previous").click()
    _wait(lambda: "/ui/compare?" in browser.current_url)
    assert browser.current_url.endswith(f"compare?id={a}&id={b}")
    visit(browser, browser.current_url, shots, "compare-example")
    rows = {tr.get_attribute("data-field"): tr for tr in browser.find_elements(By.CSS_SELECTOR, "#compare tbody tr")}
    changed = rows["param train.n_estimators"]
    assert "differs" in changed.get_attribute("class").split()
    assert [td.text for td in changed.find_elements(By.TAG_NAME, "td")] == ["50", "120"]
    assert "same" in rows["param train.max_depth"].get_attribute("class").split()
    assert "same" in rows["input data/features"].get_attribute("class").split()


# -- 10,000 executions -------------------------------------------------------------------------
def test_big_store_table_counts_sorts_and_filters(big: Tuple[UiServer, Dict[str, Any]], browser: Any, shots: Path) -> None:
    from selenium.webdriver.common.by import By

    server, facts = big
    visit(browser, server.url + "executions?pipeline=big&col=metric:accuracy&col=param:n_estimators&sort=metric:accuracy", shots, "executions-big")
    assert int(browser.find_element(By.ID, "total").text) == facts["n"] == 10_000
    assert len(cells(browser, 1)) == 50  # one page
    acc = column_index(browser, "metric:accuracy")
    first = [float(x) for x in cells(browser, acc)]
    assert first == sorted(first, reverse=True)
    everything = server.json("executions?pipeline=big&per_page=500&sort=metric:accuracy&order=asc")
    assert everything["total"] == 10_000
    lowest = everything["rows"][0]["metrics"]["accuracy"]
    browser.find_element(By.CSS_SELECTOR, 'th[data-sort="metric:accuracy"] a').click()
    _wait(lambda: "order=asc" in browser.current_url)
    asc = [float(x) for x in cells(browser, column_index(browser, "metric:accuracy"))]
    assert asc == sorted(asc) and asc[0] == lowest and asc[0] < first[-1]
    # Filters narrow it, server side: state, then a param value, then a stage.
    visit(browser, server.url + "executions?pipeline=big&state=FAILED", shots, "executions-big-failed")
    assert int(browser.find_element(By.ID, "total").text) == facts["failed"]
    assert set(cells(browser, column_index(browser, "state"))) == {"failed"}
    browser.get(server.url + "executions?pipeline=big&param=n_estimators%3D7")
    assert int(browser.find_element(By.ID, "total").text) == facts["n_estimators_7"]
    browser.get(server.url + "executions?pipeline=big&stage=train&state=COMPLETE")
    train_failed = sum(1 for i in range(facts["n"]) if i % 3 == 1 and i % 17 == 0)
    assert int(browser.find_element(By.ID, "total").text) == facts["by_stage"]["train"] - train_failed
    # The column chooser: ticking a metric adds its column (ui.js submits the form).
    browser.get(server.url + "executions?pipeline=big&col=param:lr")
    assert "metric:loss" not in [th.get_attribute("data-sort") for th in browser.find_elements(By.CSS_SELECTOR, "#executions thead th")]
    browser.find_element(By.CSS_SELECTOR, "details.columns summary").click()
    browser.find_element(By.CSS_SELECTOR, 'input[name=col][value="metric:loss"]').click()
    _wait(lambda: "metric%3Aloss" in browser.current_url)
    losses = cells(browser, column_index(browser, "metric:loss"))
    assert len(losses) == 50 and all(0 <= float(x) <= 0.5 for x in losses)
    # Paging: the last page holds the remainder.
    data = server.json("executions?pipeline=big&per_page=300&page=34")
    assert data["pages"] == 34 and len(data["rows"]) == 10_000 - 33 * 300


def test_big_store_time_range_and_other_pages(big: Tuple[UiServer, Dict[str, Any]], browser: Any, shots: Path) -> None:
    from selenium.webdriver.common.by import By

    from benchmarks.bench_ui import DAY0_MS, DAYS

    server, facts = big
    import datetime

    mid = datetime.datetime.fromtimestamp((DAY0_MS - DAYS * 86_400_000 / 2) / 1000).strftime("%Y-%m-%dT%H:%M")
    page = server.json(f"executions?pipeline=big&since={mid}")
    assert 0 < page["total"] < facts["n"]
    assert all(r["start_ms"] >= DAY0_MS - DAYS * 86_400_000 / 2 - 60_000 for r in page["rows"])
    visit(browser, server.url, shots, "pipelines-big")
    visit(browser, server.url + "executions/5000", shots, "execution-big")
    assert "python src/" in browser.find_element(By.ID, "command").text
    visit(browser, server.url + "artifacts?type=Model&q=models/m12", shots, "artifacts-big")
    assert int(browser.find_element(By.ID, "total").text) == 111  # m12, m120-m129, m1200-m1299
    visit(browser, server.url + "lineage?node=artifact:8&depth=1", shots, "lineage-big-capped")
    assert "more nodes not drawn" in browser.find_element(By.CSS_SELECTOR, ".summary").text


# -- escaping ----------------------------------------------------------------------------------
def test_store_values_are_escaped_and_no_script_runs(xss_server: Tuple[UiServer, int, int], browser: Any, shots: Path) -> None:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    server, eid, aid = xss_server
    pages = {
        "xss-artifact": f"artifacts/{aid}",
        "xss-artifacts": "artifacts",
        "xss-execution": f"executions/{eid}",
        "xss-executions": "executions?pipeline=xss%3Ci%3Epipe%3C/i%3E&col=param:note",
        "xss-lineage": f"lineage?node=artifact:{aid}",
        "xss-pipelines": "",
    }
    for name, path in pages.items():
        browser.get(server.url + path)
        with pytest.raises(TimeoutException):
            WebDriverWait(browser, 0.3).until(expected_conditions.alert_is_present())
        assert browser.execute_script("return window.__pwned === undefined"), path
        assert not browser.find_elements(By.CSS_SELECTOR, "main script, main img, main b, main i"), path
        browser.save_screenshot(str(shots / f"{name}.png"))
    browser.get(server.url + f"artifacts/{aid}")
    assert browser.find_element(By.ID, "artifact-name").text == XSS_NAME
    browser.get(server.url + f"executions/{eid}")
    assert XSS_PARAM in browser.find_element(By.ID, "params").text
    status, _, body = server.get(f"artifacts/{aid}")
    assert XSS_NAME not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def _wait(cond: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for the page")

