"""`pixelrefer sources` and `pixelrefer demo-data`."""

from pipelines.cli import main
from sources import registry
from sources.refcoco import RefcocoAdapter
from tests.sources.test_registry import file_bytes


def test_sources_lists_every_adapter_with_version_and_licence(capsys):
    assert main(["sources"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "LICENSE"]
    rows = {line.split()[0]: line for line in lines[1:-1]}
    assert list(rows) == list(registry.available())
    for name, line in rows.items():
        adapter = registry.get(name)
        assert line.split()[1] == adapter.version and line.endswith("  " + adapter.license)
    assert lines[-1] == "(`pixelrefer sources --layout NAME` shows the folder tree a source expects under --root)"


def test_sources_layout(capsys):
    assert main(["sources", "--layout", "refcoco"]) == 0
    assert capsys.readouterr().out == (
        f"refcoco (adapter version 2, licence: {RefcocoAdapter.license})\n"
        "expected layout under --root:\n"
        "refcoco/instances.json   refcoco/refs(unc).p   refcoco/refs(google).p\n"
        "refcoco+/instances.json  refcoco+/refs(unc).p\n"
        "refcocog/instances.json  refcocog/refs(umd).p  refcocog/refs(google).p\n"
        "train2014/COCO_train2014_000000000009.jpg ...   (COCO train2014: here or in a declared media root)\n"
        "\n"
        "In a roots file (ingest/build --roots FILE.yaml) give the folder as above, or split annotations from\n"
        "media, e.g. one COCO folder shared by every COCO-based source:\n"
        "  refcoco: /data/refcoco\n"
        "  refcoco: {annotations: /data/refcoco/annotations, media: [/data/coco]}\n"
    )
    assert main(["sources", "--layout", "nope"]) == 2
    assert capsys.readouterr().err.startswith("pixelrefer sources: unknown source 'nope'; known sources: ")


def test_demo_data_writes_fixtures_deterministically(tmp_path, capsys):
    assert main(["demo-data", "--out", str(tmp_path / "a"), "--sources", "lvis,refcoco"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["lvis", "refcoco"]
    assert out[0].split()[:3] == ["lvis", "6", "files"] and out[0].endswith(str(tmp_path / "a" / "lvis"))
    assert out[1].split()[:3] == ["refcoco", "7", "files"]
    assert out[2] == f"demo corpus written to {tmp_path / 'a'}; convert it with: pixelrefer ingest --source all --root {tmp_path / 'a'} --out BUILD"

    assert main(["demo-data", "--out", str(tmp_path / "b")]) == 0
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == sorted(registry.available())
    for name in ("lvis", "refcoco"):
        assert file_bytes(tmp_path / "a" / name) == file_bytes(tmp_path / "b" / name)


def test_demo_data_refuses_to_mix_with_old_files_unless_overwrite(tmp_path, capsys):
    stale = tmp_path / "lvis" / "stale.json"
    stale.parent.mkdir()
    stale.write_text("{}")
    assert main(["demo-data", "--out", str(tmp_path), "--sources", "lvis"]) == 2
    assert capsys.readouterr().err == f"pixelrefer demo-data: {tmp_path / 'lvis'} is not empty; pass --overwrite to replace it\n"
    assert main(["demo-data", "--out", str(tmp_path), "--sources", "lvis", "--overwrite"]) == 0
    assert not stale.exists() and (tmp_path / "lvis" / "lvis_v1_val.json").is_file()


def test_demo_data_unknown_source(tmp_path, capsys):
    assert main(["demo-data", "--out", str(tmp_path), "--sources", "lvis,nope"]) == 2
    assert capsys.readouterr().err.startswith("pixelrefer demo-data: unknown source(s) nope; known: lvis, ")
    assert not (tmp_path / "lvis").exists()
