"""The CLI skeleton: verbs, version, exit codes, and `validate`'s per-reason summary."""

import json
import subprocess
import sys
import types

import pytest
import yaml

from pipelines.cli import COMMANDS, main
from pipelines.errors import UserError
from sources import jsonarray, registry
from schemas import REASONS
from tests.factories import image_sample, video_sample
from tests.schemas.test_validate import broken_samples

VERBS = ["sources", "ingest", "mix", "segment", "videoqa", "shard", "build", "train", "inspect", "report",
         "stats", "validate", "demo-data", "demo", "export", "generate", "eval"]


def test_help_lists_every_verb_of_the_design():
    out = subprocess.run([sys.executable, "-m", "pipelines.cli", "--help"], capture_output=True, text=True, check=True).stdout
    for verb in VERBS:
        assert f"    {verb}" in out, verb
    assert sorted(VERBS) == sorted(COMMANDS)


def test_version(capsys):
    try:
        main(["--version"])
    except SystemExit as exit_:
        assert exit_.code == 0
    assert capsys.readouterr().out == "pixelrefer 0.1.0\n"


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_validate_counts_each_reason_and_exits_1(tmp_path, capsys):
    cases = broken_samples()
    records = [image_sample().model_dump(mode="json"), *cases.values(), video_sample().model_dump(mode="json")]
    path = tmp_path / "mixed.jsonl"
    write_jsonl(path, records)
    with path.open("a") as f:
        f.write("{not json\n")
    rejects = tmp_path / "rejects.jsonl"
    assert main(["validate", str(path), "--rejects", str(rejects)]) == 1
    out = capsys.readouterr().out.splitlines()
    counts = {line.split()[0]: int(line.split()[1]) for line in out if line and not line.startswith((" ", str(path)))}
    assert counts == {**{reason: 1 for reason in REASONS}, "schema_error": 2}
    assert out[-1] == f"{path}: {len(records) + 1} records, 2 valid, {len(REASONS) + 1} rejected"
    assert "e.g. mixed.jsonl:8: region 0 frame 0: RLE size [20, 60] vs media [40, 60]" in "\n".join(out)
    rows = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [r["locator"] for r in rows][:2] == ["mixed.jsonl:2", "mixed.jsonl:3"]
    assert rows[-1] == {"reason": "schema_error", "locator": f"mixed.jsonl:{len(records) + 1}",
                        "detail": "not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"}


def test_validate_clean_jsonl_and_parquet_exit_0(tmp_path, capsys):
    from schemas.arrow import write_parquet

    write_jsonl(tmp_path / "ok.jsonl", [image_sample().model_dump(mode="json"), video_sample().model_dump(mode="json")])
    write_parquet([image_sample(), video_sample()], tmp_path / "ok.parquet")
    assert main(["validate", str(tmp_path / "ok.jsonl")]) == 0
    assert main(["validate", str(tmp_path / "ok.parquet")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{tmp_path / 'ok.jsonl'}: 2 records, 2 valid, 0 rejected",
                   f"{tmp_path / 'ok.parquet'}: 2 records, 2 valid, 0 rejected"]


def test_validate_missing_or_wrong_file_exits_2(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.jsonl")]) == 2
    (tmp_path / "x.csv").write_text("a")
    assert main(["validate", str(tmp_path / "x.csv")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"pixelrefer validate: no such file: {tmp_path / 'nope.jsonl'}",
        f"pixelrefer validate: {tmp_path / 'x.csv'}: expected a .jsonl or .parquet file of samples",
    ]


# ---------------------------------------------------------------- every verb: errors are one line


def fake_verb(monkeypatch, run):
    """Register verb `fake`, whose run(args) is `run`."""
    module = types.ModuleType("fake_verb")
    module.add_arguments = lambda parser: None
    module.run = run
    monkeypatch.setitem(sys.modules, "fake_verb", module)
    monkeypatch.setitem(COMMANDS, "fake", ("fake_verb", "A verb for the tests."))


def _load_yaml_file(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def _raise(err):
    raise err


def _internal_key_error():
    return {}["missing"]


BAD_YAML = "name: bad\nstages:\n  stage1: [a, b\n  stage2: 3\n"


@pytest.mark.parametrize("failure, message, status", [
    (lambda tmp: _load_yaml_file(tmp / "bad.yaml"),
     "invalid YAML: expected ',' or ']', but got ':' (while parsing a flow sequence), {tmp}/bad.yaml line 4 column 9, "
     "fix the YAML there", 2),
    (lambda tmp: open(tmp / "roots.yaml"), "no such file or folder, {tmp}/roots.yaml, check the path", 2),
    (lambda tmp: jsonarray.load_json(tmp / "bad.json"), "{tmp}/bad.json: truncated JSON at byte 7 (Expecting ',' delimiter)", 2),
    (lambda tmp: _raise(UserError("no recipe named 'x'", "--recipe", "name a bundled recipe or a YAML file")),
     "no recipe named 'x', --recipe, name a bundled recipe or a YAML file", 2),
    (lambda tmp: registry.get("nope"), "unknown source 'nope'; known sources: {known}", 2),
    (lambda tmp: _raise(FileNotFoundError(f"{tmp}/unified/vg/source.json is missing: run `pixelrefer ingest --source vg` first")),
     "{tmp}/unified/vg/source.json is missing: run `pixelrefer ingest --source vg` first", 2),
    (lambda tmp: _internal_key_error(), "internal error KeyError: 'missing' (rerun with --debug for the traceback)", 1),
    (lambda tmp: _raise(ValueError("two\n  lines")), "internal error ValueError: two lines (rerun with --debug for the traceback)", 1),
])
def test_a_verb_failure_is_one_line_with_its_exit_status(tmp_path, capsys, monkeypatch, failure, message, status):
    (tmp_path / "bad.yaml").write_text(BAD_YAML)
    (tmp_path / "bad.json").write_text('{"a": 1')
    fake_verb(monkeypatch, lambda args: failure(tmp_path))
    assert main(["fake"]) == status
    captured = capsys.readouterr()
    known = ", ".join(sorted(registry.available()))
    assert (captured.out, captured.err) == ("", f"error: {message.format(tmp=tmp_path, known=known)}\n")


def test_debug_before_the_verb_shows_the_traceback(monkeypatch, capsys):
    fake_verb(monkeypatch, lambda args: _internal_key_error())
    with pytest.raises(KeyError, match="missing"):
        main(["--debug", "fake"])
    assert capsys.readouterr().err == ""


def test_a_verb_that_returns_its_own_status_keeps_it(monkeypatch, capsys):
    fake_verb(monkeypatch, lambda args: 1)
    assert main(["fake"]) == 1
    assert capsys.readouterr().err == ""


def test_a_malformed_recipe_is_one_line_naming_its_line(tmp_path, capsys):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(BAD_YAML)
    assert main(["mix", "--recipe", str(recipe), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == ("error: invalid YAML: expected ',' or ']', but got ':' (while parsing a flow sequence), "
                                       f"{recipe} line 4 column 9, fix the YAML there\n")
