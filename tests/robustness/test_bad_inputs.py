"""Issue #13's acceptance, held-out style: bad inputs across every registered source end in a named
reject or a one-line error; 0 tracebacks, 0 lost units, 0 crashes, no case over 2 GB RSS or 60 s,
and `read = written + rejected`.

Each case (`tests/robustness/mutations.py`) writes its source's fixture into a fresh folder,
damages it, and converts every unit in a child process (`CHILD`: address space capped at 2 GB,
60 s timeout), so a segfault, a memory blow-up or a hang is observed, not fatal to pytest. The
child catches nothing but the documented file-level errors (FileNotFoundError, ValueError incl.
`sources.jsonarray.JsonFileError`), which it reports as one line. The outcome is compared with
the unmutated fixture's: exactly the expected rejects added, every sample the mutation did not
touch still converted, and the sample JSON encodable (no lone surrogate reaches a writer). The
`os.system` pickles would `touch PWNED_BY_PICKLE` in the child's working folder: none may appear.
Children run two at a time (`runs`); each test then checks its own case.

Classes and cases:

    class                     cases   sources
    polygon_coordinate_type       6   lvis osprey paco partimagenet vcr pixelrefer-release
    polygon_far_outside           6   lvis(2) osprey partimagenet vcr pixelrefer-release
    rle_malformed                10   paco(4) osprey(2) mevis videorefer pixelrefer-release dam
    lone_surrogate_text           6   osprey vg refcoco llava mevis hcstvg
    lone_surrogate_path           3   osprey mdvp hcstvg
    invalid_utf8                  6   vg lvis vcr mevis(2) hcstvg
    truncated_json                6   osprey paco videorefer hcstvg mevis refcoco
    empty_file                    4   vg llava partimagenet mevis
    wrong_top_level               4   osprey lvis hcstvg mevis
    deep_nesting                  9   osprey lvis vcr(2) llava pixelrefer-release mevis videorefer hcstvg
    decompression_bomb            4   lvis osprey vcr dam
    bad_image_file                5   paco vg partimagenet mdvp pascalpart
    name_too_long                 4   osprey vcr llava hcstvg
    path_escape                   4   llava vcr videorefer paco
    symlink_escape                3   lvis vcr videorefer
    frame_index                   6   videorefer(3) pixelrefer-release(2) hcstvg
    duplicate_image_id            2   lvis partimagenet
    vg_region_id                  2   vg(2)
    refcoco_non_dict_ref          2   refcoco(2)
    dam_tar_symlink               1   dam
    dam_member_name               2   dam(2)
    dam_member_huge               1   dam
    pickle_allocates              3   dam(2) refcoco
    pickle_os_system              2   refcoco dam
    record_not_dict              10   osprey vg mdvp llava videorefer pixelrefer-release hcstvg vcr dam refcoco
    missing_key                   7   osprey videorefer hcstvg mdvp lvis pascalpart llava
    huge_integer                  7   mdvp lvis vg vcr videorefer(2) hcstvg
    duplicate_sample_id           3   vcr videorefer dam
    bad_annotation_file           1   pascalpart
    bad_video_file                3   llava hcstvg videorefer
    total                       132   (30 classes, all 15 registered sources)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sources import registry
from tests.robustness.mutations import CASES, Case

REPO = Path(__file__).resolve().parents[2]
MEMORY_LIMIT = 2 << 30
TIMEOUT_S = 60

# The child: converts every unit of one source root and prints one JSON line. It catches only the
# documented file-level errors; anything else is a traceback on stderr (and a failed case).
CHILD = r"""
import json, resource, sys
limit = int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from schemas import Reject, Sample
from sources import registry
from sources.roots import Roots

name, root = sys.argv[1], sys.argv[2]
adapter = registry.get(name)
roots = Roots.of(root)
here = str(roots.annotations)

def clean(text):
    return text.replace(here, "<root>")

out = {"error": None, "units": []}
try:
    units = adapter.units(roots)
except (FileNotFoundError, ValueError) as err:
    out["error"] = clean(f"{type(err).__name__}: {err}")
    units = []
for unit in units:
    entry = {"name": unit.name, "read": 0, "samples": [], "rejects": [], "other": 0, "error": None}
    try:
        for outcome in adapter.convert(roots, unit):
            entry["read"] += 1
            if isinstance(outcome, Sample):
                outcome.model_dump_json().encode("utf-8")  # what a writer does: a lone surrogate fails here
                entry["samples"].append(outcome.id)
            elif isinstance(outcome, Reject):
                entry["rejects"].append([outcome.reason, clean(outcome.locator)])
            else:
                entry["other"] += 1
    except (FileNotFoundError, ValueError) as err:
        entry["error"] = clean(f"{type(err).__name__}: {err}")
    out["units"].append(entry)
# VmHWM, the peak of this process's own memory: ru_maxrss survives exec, so it would report
# the peak of the pytest process that started this child
out["maxrss"] = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps(out))
"""


def run_child(source: str, root: Path) -> tuple[dict, str, float]:
    """The child's summary, its stderr and its wall time (asserting exit 0, no traceback, < 60 s)."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, source, str(root), str(MEMORY_LIMIT)], check=False,
                          capture_output=True, text=True, timeout=TIMEOUT_S, cwd=root.parent, env=env)
    seconds = time.perf_counter() - start
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr, seconds


def run_case(case: Case, work: Path) -> tuple[dict, float]:
    """Write the case's fixture under `work`, damage it, convert it in a child; (summary, seconds)."""
    root = work / case.source
    registry.get(case.source).write_fixture(root)
    case.mutate(root)
    summary, _, seconds = run_child(case.source, root)
    assert not list(work.glob("PWNED*")), "a pickle ran code (os.system in the child's working folder)"
    return summary, seconds


def outcomes(summary: dict, skip: set[str] = frozenset()) -> tuple[list[str], Counter]:
    samples = [s for u in summary["units"] if u["name"] not in skip for s in u["samples"]]
    rejects = Counter(tuple(r) for u in summary["units"] if u["name"] not in skip for r in u["rejects"])
    return samples, rejects


def check(case: Case, base: dict, got: dict) -> None:
    # every outcome is exactly a sample or a reject: read = written + rejected
    for unit in got["units"]:
        assert unit["other"] == 0 and unit["read"] == len(unit["samples"]) + len(unit["rejects"]), unit
    errors = [got["error"]] if got["error"] else []
    errors += [u["error"] for u in got["units"] if u["error"]]
    for error in errors:
        assert "\n" not in error, f"not one line: {error!r}"
    if case.error is None:
        assert not errors, errors
        skip: set[str] = set()
    else:
        unit, prefix = case.error
        message = got["error"] if unit is None else next((u["error"] for u in got["units"] if u["name"] == unit), None)
        assert message is not None and message.startswith(prefix), (message, prefix)
        assert len(errors) == 1, errors
        skip = {u["name"] for u in base["units"]} if unit is None else {unit}
    base_samples, base_rejects = outcomes(base, skip)
    got_samples, got_rejects = outcomes(got, skip)
    assert len(set(got_samples)) == len(got_samples), f"duplicate sample ids: {Counter(got_samples).most_common(3)}"
    assert set(case.touched) <= set(base_samples), "a touched id is no baseline sample"
    assert sorted(got_samples) == sorted(set(base_samples) - set(case.touched)), "good records lost or ids changed"
    expected = base_rejects - Counter(case.removed) + Counter(case.rejects)
    assert sorted(got_rejects.elements()) == sorted(expected.elements())
    assert not any(reason == "adapter_error" for reason, _ in got_rejects), "an unnamed failure (adapter bug)"


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory):
    """The selected cases (and their sources' unmutated baselines), run two children at a time;
    {case id or 'baseline:<source>': future of (summary, seconds)}."""
    selected = [item.callspec.params["case"] for item in request.session.items
                if item.module is sys.modules[__name__] and hasattr(item, "callspec") and "case" in item.callspec.params]
    top = tmp_path_factory.mktemp("bad-inputs")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {f"baseline:{s}": pool.submit(run_case, Case("baseline", s, "none", lambda root: None), top / f"baseline-{s}")
                   for s in sorted({c.source for c in selected})}
        futures.update({c.id: pool.submit(run_case, c, top / c.id) for c in selected})
        yield futures
        for future in futures.values():
            future.cancel()


def test_every_registered_source_is_covered():
    assert {c.source for c in CASES} == set(registry.available())
    assert len({c.id for c in CASES}) == len(CASES)
    assert all(c.error is not None or c.rejects for c in CASES), "every case ends in a named reject or an error"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, runs):
    base, _ = runs[f"baseline:{case.source}"].result()
    got, seconds = runs[case.id].result()
    assert seconds < TIMEOUT_S
    assert got["maxrss"] < MEMORY_LIMIT, f"peak RSS {got['maxrss'] >> 20} MiB"
    check(case, base, got)

