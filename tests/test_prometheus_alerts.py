"""deploy/prometheus: the alerting rules pass `promtool check rules` and their unit tests
(`promtool test rules`), and a real Prometheus (Debian's `prometheus`, scripts/os-packages.txt)
scrapes a running dashboard with the example configuration, bearer token included, and fires them.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import uuid

import pytest
import requests
import yaml
from sqlalchemy import text

from tests.processes import ROOT, Process, free_port, wait_for

DEPLOY = ROOT / "deploy" / "prometheus"
RULES = DEPLOY / "alerts.yml"
RULE_TESTS = DEPLOY / "alerts_test.yml"
EXAMPLE = DEPLOY / "prometheus.yml"


def _program(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: `make test` installs it (Debian package prometheus)")
    return path


def _promtool(*args: str) -> str:
    result = subprocess.run(
        [_program("promtool"), *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_rules_pass_promtool_check():
    assert "SUCCESS" in _promtool("check", "rules", str(RULES))


def test_rules_unit_tests_pass():
    assert "SUCCESS" in _promtool("test", "rules", str(RULE_TESTS))


def test_every_rule_has_a_unit_test():
    rules = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    tested = {
        t["alertname"]
        for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for t in case.get("alert_rule_test", [])
    }
    assert rules <= tested, rules - tested


def test_example_configuration_passes_promtool(tmp_path):
    config = yaml.safe_load(EXAMPLE.read_text())
    token = tmp_path / "token"
    token.write_text("t")
    config["scrape_configs"][0]["authorization"]["credentials_file"] = str(token)
    config["rule_files"] = [str(RULES)]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    assert "SUCCESS" in _promtool("check", "config", str(path))


def _stat_row(db, message_type: str, hours_ago: int) -> None:
    db.session.execute(
        text(
            "INSERT INTO message_stats (bucket, message_type, instrument, total, errored, "
            "sum_processing_ms, max_processing_ms, timed) VALUES "
            "(date_trunc('hour', now()) - make_interval(hours => :h), :t, '', 3, 0, 0, 0, 0)"
        ),
        {"t": message_type, "h": hours_ago},
    )
    db.session.commit()


@pytest.mark.slow
def test_a_real_prometheus_scrapes_the_dashboard_and_fires_the_rules(live_server, db, tmp_path):
    _stat_row(db, "went-silent", hours_ago=48)
    _stat_row(db, "still-arriving", hours_ago=0)
    token = "metrics-" + uuid.uuid4().hex
    url = live_server(workers=2, METRICS_TOKEN=token)
    # The workers load the app after the socket is open: wait until they answer.
    wait_for(
        lambda: requests.get(url + "/metrics", timeout=60).status_code == 401, 60, "the dashboard"
    )
    target = url.removeprefix("http://")

    # The example configuration, pointed at this dashboard, with a fast scrape and evaluation and
    # no Alertmanager; the rules as shipped but without their `for` (fire at the first match).
    token_file = tmp_path / "metrics-token"
    token_file.write_text(token)
    token_file.chmod(0o600)
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("for", None)
    rules_file = tmp_path / "alerts.yml"
    rules_file.write_text(yaml.safe_dump(rules))
    config = yaml.safe_load(EXAMPLE.read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(rules_file)]
    config.pop("alerting")
    job = config["scrape_configs"][0]
    job["authorization"]["credentials_file"] = str(token_file)
    job["static_configs"] = [{"targets": [target]}]
    wrong = copy.deepcopy(job)
    wrong["job_name"] = "wrong-token"
    wrong["authorization"] = {"type": "Bearer", "credentials": "not-the-token"}
    config["scrape_configs"].append(wrong)
    config_file = tmp_path / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))

    port = free_port()
    api = f"http://127.0.0.1:{port}/api/v1"
    prometheus = Process(
        [
            _program("prometheus"),
            f"--config.file={config_file}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        dict(os.environ),
        tmp_path / "prometheus.log",
    ).start()
    try:

        def get(path: str, **params):
            try:
                response = requests.get(api + path, params=params, timeout=5)
            except requests.ConnectionError:
                assert prometheus.alive, prometheus.output()[-3000:]
                return None
            return response.json()["data"]

        def targets():
            data = get("/targets")
            found = {t["labels"]["job"]: t for t in (data or {}).get("activeTargets", [])}
            ready = {j: t for j, t in found.items() if t["health"] != "unknown"}
            return ready if len(ready) == 2 else None

        scraped = wait_for(targets, 60, "Prometheus to scrape both jobs", 0.5)
        assert scraped["pacer-dashboard"]["health"] == "up", scraped["pacer-dashboard"]
        assert scraped["wrong-token"]["health"] == "down"
        assert "401" in scraped["wrong-token"]["lastError"]

        def firing():
            alerts = (get("/alerts") or {}).get("alerts", [])
            return {
                (a["labels"]["alertname"], a["labels"].get("message_type"))
                for a in alerts
                if a["state"] == "firing" and a["labels"].get("job") == "pacer-dashboard"
            }

        expected = {
            ("PacerDashboardNoReportConsumer", None),  # no worker runs in this test
            ("PacerDashboardMessageTypeSilent", "went-silent"),
        }
        fired = wait_for(lambda: (f := firing()) >= expected and f, 60, "the alerts", 0.5)
        assert ("PacerDashboardMessageTypeSilent", "still-arriving") not in fired
        assert ("PacerDashboardDatabaseDown", None) not in fired

        # The request latency histogram is scraped with its route labels (both gunicorn workers).
        result = get(
            "/query",
            query='sum(pacer_dashboard_http_request_duration_seconds_count{route="/metrics"})',
        )
        assert result and float(result["result"][0]["value"][1]) >= 1
    finally:
        prometheus.stop()
