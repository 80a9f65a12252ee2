"""The identity gate on published ID-model outputs: `benchmarks/identity.py --real DIR`.

DIR holds <person>/refs/*, <person>/outputs/* and people.json (person -> group), as
scripts/fetch_identity_eval.py assembles it from benchmarks/identity_real/manifest.json. Everything goes
through the production functions via services/likeness_report.assess (intake's checks and consensus on a
person's references, collect's gate on every output), with the settings of the environment except the
shortest side (published input crops are 189-422 px).

Prints, per person and overall, and per group where people.json names one:
- same person: outputs kept at the output threshold (drops by reason), distance quantiles to their consensus;
- different people: every output with one face judged against every other person's consensus, accepted ones;
- a threshold sweep of both;
- intake: reference pairs of one person farther than the intake threshold, pairs of two people within it, and
  whether a person's references refuse another person's photo as `different_person`.
"""

from __future__ import annotations

import itertools
import json
import statistics
from pathlib import Path

SWEEP = (0.6, 0.65, 0.68, 0.7, 0.72)
_IMAGES = {".jpg", ".jpeg", ".png", ".webp", ".heic"}


def _files(directory: Path) -> list[tuple[str, bytes]]:
    return [(p.name, p.read_bytes()) for p in sorted(directory.iterdir()) if p.suffix.lower() in _IMAGES]


def _quantiles(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) < 4:
        return " ".join(f"{v:.2f}" for v in sorted(values))
    q1, q2, q3 = statistics.quantiles(values, n=4)
    return f"min {min(values):.2f}  q1 {q1:.2f}  median {q2:.2f}  q3 {q3:.2f}  max {max(values):.2f}"


def _pct(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / whole:.1f} %)" if whole else "0/0"


def evaluate(root: Path) -> int:
    from portrait_studio.config import Settings
    from portrait_studio.errors import PhotoRejected
    from portrait_studio.services import identity
    from portrait_studio.services.likeness_report import assess
    from portrait_studio.services.photos import check_photo

    groups: dict[str, str] = json.loads((root / "people.json").read_text())
    settings = Settings(min_short_side_px=1)
    limit, intake = settings.identity_output_max_distance, settings.identity_same_person_max_distance
    people = sorted(groups)
    refs = {p: _files(root / p / "refs") for p in people}
    outputs = [(f"{p}/{name}", data) for p in people for name, data in _files(root / p / "outputs")]
    owner = {name: name.split("/")[0] for name, _ in outputs}

    # Every person's references against every output: own outputs give the same-person figures, the rest the
    # different-person ones. verdicts[p][output] = (verdict, distance).
    verdicts: dict[str, dict[str, tuple[str, float | None]]] = {}
    ref_verdicts: dict[str, list[str]] = {}
    for p in people:
        report = assess(refs[p], outputs, settings)
        ref_verdicts[p] = [r.verdict for r in report.references]
        verdicts[p] = {o.file: (o.verdict, o.distance) for o in report.outputs}

    print(f"real outputs in {root}: {len(people)} people, {len(outputs)} outputs")
    print(f"thresholds: output {limit}, intake {intake}")
    print(f"{'person':10} {'group':18} {'refs ok':>7}  {'kept':>14}  drops                      own distance")
    own_all: list[float] = []
    kept_total = judged_total = kept4 = judged4 = 0
    for p in people:
        own = {o: v for o, v in verdicts[p].items() if owner[o] == p}
        kept = sum(v == "kept" for v, _ in own.values())
        drops: dict[str, int] = {}
        for v, _ in own.values():
            if v != "kept":
                drops[v] = drops.get(v, 0) + 1
        distances = [d for _, d in own.values() if d is not None]
        own_all += distances
        accepted_refs = sum(v == "accepted" for v in ref_verdicts[p])
        kept_total, judged_total = kept_total + kept, judged_total + len(own)
        if accepted_refs >= 4:
            kept4, judged4 = kept4 + kept, judged4 + len(own)
        drop_text = ", ".join(f"{k} {n}" for k, n in sorted(drops.items())) or "-"
        print(
            f"{p:10} {groups[p]:18} {accepted_refs:3}/{len(refs[p]):<3}  {_pct(kept, len(own)):>14}  "
            f"{drop_text:26} {_quantiles(distances)}"
        )
    print(f"same person kept at {limit}: {_pct(kept_total, judged_total)}")
    print(f"  of people with >= 4 accepted references: {_pct(kept4, judged4)}")
    print(f"same person distances: {_quantiles(own_all)}")

    # Different people: outputs with one face, against every other person's consensus.
    cross: list[tuple[str, str, float]] = [
        (p, owner[o], d) for p in people for o, (_, d) in verdicts[p].items() if owner[o] != p and d is not None
    ]
    print()
    print(f"different-person outputs (one face) against another person's references: {len(cross)} judgements")
    for threshold in SWEEP:
        own_kept = sum(d <= threshold for d in own_all)
        wrong = sum(d <= threshold for _, _, d in cross)
        print(
            f"  at {threshold:.2f}: same person kept {_pct(own_kept, judged_total)} (of all outputs), "
            f"different person accepted {_pct(wrong, len(cross))}"
        )
    by_pair: dict[tuple[str, str], list[float]] = {}
    for p, q, d in cross:
        by_pair.setdefault(tuple(sorted((groups[p], groups[q]))), []).append(d)  # type: ignore[arg-type]
    print(f"  by group pair (refs' group, outputs' group), at {limit}:")
    for pair, values in sorted(by_pair.items()):
        accepted = sum(d <= limit for d in values)
        print(f"    {pair[0]:>17} / {pair[1]:17} {_pct(accepted, len(values)):>16}  closest {min(values):.2f}")
    closest = sorted(cross, key=lambda row: row[2])[:5]
    # Ranking: how often an own output is closer than a stranger's (1.0 = every own output before every stranger).
    ranked = sum((own < d) + 0.5 * (own == d) for own in own_all for _, _, d in cross) / (len(own_all) * len(cross))
    print(
        f"  farthest own output {max(own_all):.3f}, closest stranger {min(d for _, _, d in cross):.3f}, "
        f"ranking AUC {ranked:.4f}"
    )
    print("  closest different-person judgements: " + ", ".join(f"{q} output vs {p} {d:.2f}" for p, q, d in closest))

    # Intake: pairs of reference photos, and a stranger's photo among a person's references.
    described: dict[str, list[identity.Descriptor]] = {}
    for p in people:
        described[p] = []
        hashes: dict[str, str] = {}
        for index, (_, data) in enumerate(refs[p]):
            try:
                photo = check_photo(data, settings, hashes)
            except PhotoRejected:  # refused at upload: counted in "refs ok" above
                continue
            hashes[str(index)] = photo.quality.phash
            found = identity.describe_photo(photo.normalized.jpeg, settings, photo.quality.face)
            if found is not None:
                described[p].append(found)
    same = [a.distance(b) for p in people for a, b in itertools.combinations(described[p], 2)]
    different = [
        (groups[p], groups[q], a.distance(b))
        for p, q in itertools.combinations(people, 2)
        for a in described[p]
        for b in described[q]
    ]
    print()
    print(f"intake (threshold {intake}): {len(same)} same-person pairs {_quantiles(same)}")
    print(f"  same person refused (pair > {intake}): {_pct(sum(d > intake for d in same), len(same))}")
    taken = sum(d <= intake for _, _, d in different)
    print(f"  different people taken for one (pair <= {intake}): {_pct(taken, len(different))}")
    for pair in sorted({tuple(sorted((g, h))) for g, h, _ in different}):
        values = [d for g, h, d in different if tuple(sorted((g, h))) == pair]
        within = _pct(sum(d <= intake for d in values), len(values))
        print(f"    {pair[0]:>17} / {pair[1]:17} {within:>16}  closest {min(values):.2f}")
    intruders = missed = 0
    for p in people:
        if len(described[p]) < 2:
            continue
        for q in people:
            for stranger in described[q] if q != p else []:
                photos = {str(i): d for i, d in enumerate(described[p])} | {"x": stranger}
                check = identity.check_one_person(photos, settings)
                intruders += 1
                missed += check.single_person and "x" not in check.outliers
    print(f"  a stranger's photo among a person's references, not refused: {_pct(missed, intruders)}")
    return 0
