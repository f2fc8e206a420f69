"""`fraud rules check|test|names`: exit codes, file:line:col listings, fixture diffs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from fraud.cli import cli

ROOT = Path(__file__).resolve().parents[2]

BROKEN = """\
version: 1
rules:
  - id: a
    description: typo
    when: amout > 10
    action: flag
  - id: a
    description: dup
    when: score >= 0.9
    action: blok
"""


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["rules", *args])
    return result.exit_code, result.output


@pytest.mark.parametrize("name", ["default.yaml", "strict.yaml", "marketplace.yaml"])
def test_shipped_rules_are_valid(name: str) -> None:
    code, out = invoke("check", str(ROOT / "rules" / name))
    assert code == 0, out
    assert "ok (" in out


@pytest.mark.parametrize("name", ["default.yaml", "strict.yaml", "marketplace.yaml"])
def test_shipped_rules_pass_their_fixtures(name: str) -> None:
    code, out = invoke("test", str(ROOT / "rules" / name))
    assert code == 0, out
    assert " 0 failed" in out


def test_check_lists_every_problem_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    code, out = invoke("check", str(path))
    assert code == 2
    lines = out.splitlines()
    assert lines[0] == (f"{path}:5:11: rule 'a': in 'when': unknown name 'amout' (did you "
                        "mean 'amount'?); expected a transaction field, feature, 'score', a "
                        "parameter or a list")
    assert lines[1] == f"{path}:7:9: rule 'a': duplicate rule id 'a' (first defined at line 3)"
    assert lines[2].startswith(f"{path}:10:13: rule 'a': 'action' must be one of")


def test_check_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "fraud", "rules", "check", str(tmp_path / "nope.yaml")],
        capture_output=True, text=True, check=False, cwd=ROOT)
    assert proc.returncode == 2
    assert "nope.yaml: no such file" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_check_exit_code_through_the_real_entry_point(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    proc = subprocess.run([sys.executable, "-m", "fraud", "rules", "check", str(path)],
                          capture_output=True, text=True, check=False, cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stdout.count(f"{path}:") == 3
    assert "Traceback" not in proc.stderr


def write_rules_with_fixture(tmp_path: Path, expected_action: str) -> Path:
    rules = tmp_path / "mine.yaml"
    rules.write_text("version: 1\nrules:\n"
                     "  - {id: hi, description: d, when: score >= 0.9, action: block,\n"
                     "     reason: 'score {score:.2f}'}\n"
                     "  - {id: mid, description: d, when: score >= 0.5, action: alert}\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "mine.yaml").write_text(
        "rules: ../mine.yaml\n"
        "cases:\n"
        "  - name: ok case\n"
        "    transaction: {score: 0.1}\n"
        "    expect: {action: none, rules: []}\n"
        "  - name: wrong expectation\n"
        "    transaction: {score: 0.95}\n"
        f"    expect: {{action: {expected_action}, rules: [mid],\n"
        "             reasons: {hi: 'score 0.90'}}\n")
    (tmp_path / "tests" / "other.yaml").write_text("rules: ../other.yaml\ncases: []\n")
    return rules


def test_failing_fixture_prints_a_diff_and_exits_1(tmp_path: Path) -> None:
    rules = write_rules_with_fixture(tmp_path, "alert")
    code, out = invoke("test", str(rules))
    assert code == 1
    assert f"FAIL {tmp_path / 'tests' / 'mine.yaml'}:6: wrong expectation" in out
    assert "    -action: alert\n    +action: block\n" in out
    assert "    +  - hi\n" in out
    assert "    -  hi: score 0.90\n    +  hi: score 0.95\n" in out
    assert "1 passed, 1 failed" in out


def test_passing_fixture(tmp_path: Path) -> None:
    rules = write_rules_with_fixture(tmp_path, "block")
    fixture = tmp_path / "tests" / "mine.yaml"
    fixture.write_text(fixture.read_text().replace("rules: [mid]", "rules: [hi, mid]")
                       .replace("score 0.90", "score 0.95"))
    code, out = invoke("test", str(rules))
    assert code == 0, out
    assert "2 passed, 0 failed" in out


def test_invalid_fixture_file_is_listed_and_exits_2(tmp_path: Path) -> None:
    rules = write_rules_with_fixture(tmp_path, "block")
    fixture = tmp_path / "tests" / "mine.yaml"
    fixture.write_text(fixture.read_text().replace("{score: 0.1}", "{scre: 0.1}"))
    code, out = invoke("test", str(rules))
    assert code == 2
    assert f"{fixture}:4:19: unknown field or feature 'scre' in case 'ok case' (did you mean " \
           "'score'?)" in out


def test_no_fixtures_is_an_input_error(tmp_path: Path) -> None:
    rules = tmp_path / "lonely.yaml"
    rules.write_text("version: 1\nrules: []\n")
    result = CliRunner().invoke(cli, ["rules", "test", str(rules)])
    assert result.exit_code != 0
    assert "no fixture files" in str(result.exception)


def test_names_lists_kinds() -> None:
    code, out = invoke("names", "--feature", "my_feature")
    assert code == 0
    assert "score\tnumber" in out and "user_id\tstring" in out
    assert "my_feature\tnumber" in out


@pytest.mark.parametrize("name", ["default.yaml", "strict.yaml", "marketplace.yaml"])
def test_json_schema_accepts_shipped_rules_and_rejects_bad_ones(name: str) -> None:
    import json

    import yaml

    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "rules" / "schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    document = yaml.safe_load((ROOT / "rules" / name).read_text())
    jsonschema.validate(document, schema)
    document["rules"][0]["action"] = "deny"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema)


def test_the_documented_example_loads() -> None:
    import re

    from fraud.rules import parse_rules

    doc = (ROOT / "docs" / "rules.md").read_text()
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", doc, re.S) if b.startswith("version")]
    assert blocks
    for block in blocks:
        rs = parse_rules(block, filename=str(ROOT / "rules" / "example.yaml"))
        assert rs.rule_ids


def test_check_an_s3_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_EC2_METADATA_DISABLED", "true")):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("FRAUD_ENDPOINT_URL", raising=False)
    import boto3
    from moto import mock_aws

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="rules-bucket")
        s3.put_object(Bucket="rules-bucket", Key="bad.yaml", Body=BROKEN.encode())
        code, out = invoke("check", "--region", "us-east-1", "s3://rules-bucket/bad.yaml")
        assert code == 2
        assert out.startswith("s3://rules-bucket/bad.yaml:5:11: rule 'a': in 'when': unknown name")
        code, out = invoke("check", "s3://rules-bucket/missing.yaml")
    assert code == 2
    assert out.startswith("s3://rules-bucket/missing.yaml: no such object")


def test_fixtures_written_for_another_rules_file_are_run_with_a_note(tmp_path: Path) -> None:
    rules = write_rules_with_fixture(tmp_path, "block")
    fixture = tmp_path / "tests" / "mine.yaml"
    fixture.write_text(fixture.read_text().replace("rules: [mid]", "rules: [hi, mid]")
                       .replace("score 0.90", "score 0.95"))
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(rules.read_text())
    code, out = invoke("test", str(candidate), "--fixtures", str(fixture))
    assert code == 0, out
    assert f"note: {fixture} was written for " in out
    assert f"running it against {candidate}" in out
    code, out = invoke("test", str(rules), "--fixtures", str(fixture))
    assert code == 0 and "note:" not in out
