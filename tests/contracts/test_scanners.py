"""checkov on the rendered manifests: no failed check, and every skip is one the package carries
(``prepull.core.manifests.CHECKOV_SKIPS``) with its written reason.

checkov lives in its own virtualenv (its pins conflict with pulumi's); point PREPULL_CHECKOV at
its executable. In CI (env CI set) a missing checkov is an error, elsewhere the tests are skipped.
"""

import json
import os
import subprocess

import pytest
import yaml

import prepull
from prepull.core.manifests import CHECKOV_SKIPS

DIGEST = "sha256:" + "ab" * 32
CASES = {
    "defaults": {"images": ["nginx:1.27"]},
    "options": {
        "images": [
            "nginx:1.27",
            f"ghcr.io/org/app:1.0@{DIGEST}",
            {"image": "nvcr.io/nvidia/cuda:12.6.2-base-ubuntu24.04", "platforms": ["linux/amd64"]},
        ],
        "lanes": 2,
        "pull_policy": "Always",
        "image_pull_secrets": ["regcred"],
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "startup_taint": {"key": "prepull.dev/not-ready"},
        "priority_class_name": "system-node-critical",
        "labels": {"team": "ml"},
        "annotations": {"example.com/owner": "platform"},
        "node_selector": {"pool": "gpu"},
        "max_unavailable": 2,
        "skip_await": True,
    },
    "image-volume": {"images": ["nginx:1.27", "redis:7"], "method": "image-volume"},
}


@pytest.fixture(scope="module")
def checkov():
    path = os.environ.get("PREPULL_CHECKOV")
    if not path:
        if os.environ.get("CI"):
            pytest.fail("PREPULL_CHECKOV is not set: CI must run checkov (path to the checkov executable of its own venv)")
        pytest.skip("PREPULL_CHECKOV is not set (path to a checkov executable); the scanner checks did not run")
    if not os.access(path, os.X_OK):
        pytest.fail(f"PREPULL_CHECKOV={path!r} is not an executable")
    return path


def _yaml(objs):
    # Through JSON first: plain data, no YAML anchors for shared sub-dicts.
    return yaml.safe_dump_all(json.loads(json.dumps(objs)), sort_keys=False)


def run_checkov(checkov, tmp_path, objs):
    manifest = tmp_path / "prepull.yaml"
    manifest.write_text(_yaml(objs))
    # --skip-download: no calls to the Prisma Cloud API (offline, reproducible).
    proc = subprocess.run(
        [checkov, "-f", str(manifest), "--framework", "kubernetes", "-o", "json", "--skip-download"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov did not print a JSON report (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    if isinstance(report, list):
        (report,) = [r for r in report if r.get("check_type") == "kubernetes"]
    assert report.get("check_type") == "kubernetes", report
    return report


def _strip_skips(objs):
    for o in objs:
        ann = o["metadata"].get("annotations") or {}
        for key in [k for k in ann if k.startswith("checkov.io/skip")]:
            del ann[key]
    return objs


def test_skip_reasons_are_written_and_parseable():
    ids = [check for check, _ in CHECKOV_SKIPS]
    assert len(ids) == len(set(ids))
    for check, reason in CHECKOV_SKIPS:
        assert check.startswith(("CKV_K8S_", "CKV2_K8S_")), check
        # checkov splits `checkov.io/skipN: ID=reason` on every "=": one more breaks its parser
        assert "=" not in reason and "\n" not in reason, check
        assert len(reason.split()) >= 5, (check, reason)


def test_skips_are_carried_on_every_daemon_set():
    for args in CASES.values():
        for ds in (o for o in prepull.manifests(args, "prepull") if o["kind"] == "DaemonSet"):
            ann = ds["metadata"]["annotations"]
            carried = sorted(v for k, v in ann.items() if k.startswith("checkov.io/skip"))
            assert carried == sorted(f"{c}={r}" for c, r in CHECKOV_SKIPS)


@pytest.mark.parametrize("case", list(CASES))
def test_no_failed_check_and_only_carried_skips(checkov, tmp_path, case):
    objs = prepull.manifests(CASES[case], "prepull")
    report = run_checkov(checkov, tmp_path, objs)
    summary = report["summary"]
    assert summary["parsing_errors"] == 0
    assert summary["resource_count"] >= len(objs)
    assert summary["passed"] > 0
    failed = [(c["check_id"], c["check_name"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert failed == []
    reasons = dict(CHECKOV_SKIPS)
    for c in report["results"]["skipped_checks"]:
        assert c["check_id"] in reasons, c["check_id"]
        assert c["check_result"]["suppress_comment"] == reasons[c["check_id"]]


def test_every_skip_is_needed_on_the_default_output(checkov, tmp_path):
    # Without the annotations, each carried check must actually fail: a check that passes needs no skip.
    objs = _strip_skips(prepull.manifests(CASES["defaults"], "prepull"))
    report = run_checkov(checkov, tmp_path, objs)
    assert report["results"]["skipped_checks"] == []
    failing = {c["check_id"] for c in report["results"]["failed_checks"]}
    assert failing == {check for check, _ in CHECKOV_SKIPS}
