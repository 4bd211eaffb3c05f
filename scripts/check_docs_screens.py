"""After `mkdocs build`: the site's screenshots are exactly those the browser tests of this run took.

`make test` names the run (`DOCS_SCREENS_RUN`), the browser tests record each picture's SHA-256 in
`docs/assets/screens/manifest.json` under that name (`tests/helpers/screens.py`), and this check
refuses a site whose pictures are not that manifest's, byte for byte: one missing, one more, one
changed, or a manifest of another run. Exit status 1 with one line per problem.

    python scripts/check_docs_screens.py --run RUN [--screens docs/assets/screens] [--site site]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def problems(run: str, screens: Path, site: Path) -> list[str]:
    manifest_path = screens / "manifest.json"
    if not manifest_path.exists():
        return [f"{manifest_path} is missing: the browser tests took no picture in this run"]
    manifest = json.loads(manifest_path.read_text())
    found: list[str] = []
    if manifest.get("run") != run:
        found.append(f"the manifest is of run {manifest.get('run')!r}, not of this run {run!r}")
    expected: dict[str, str] = manifest.get("screens", {})
    built = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (site / "assets" / "screens").glob("*.png")
    }
    if not expected:
        found.append("the manifest lists no picture")
    found += [f"{name}: in the manifest, not in the site" for name in sorted(expected.keys() - built.keys())]
    found += [
        f"{name}: in the site, not taken by this run" for name in sorted(built.keys() - expected.keys())
    ]
    found += [
        f"{name}: the site's picture is not the one this run took"
        for name in sorted(expected.keys() & built.keys())
        if expected[name] != built[name]
    ]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="the run's name, as the browser tests recorded it")
    parser.add_argument("--screens", type=Path, default=ROOT / "docs" / "assets" / "screens")
    parser.add_argument("--site", type=Path, default=ROOT / "site")
    args = parser.parse_args()
    found = problems(args.run, args.screens, args.site)
    for problem in found:
        print(f"check_docs_screens: {problem}", file=sys.stderr)
    if not found:
        count = len(list(args.screens.glob("*.png")))
        print(f"check_docs_screens: the site's pictures are the {count} this run took")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
