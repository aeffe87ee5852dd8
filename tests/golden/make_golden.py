"""Write the golden outputs of every set in ``sets.SETS`` with the code as it is now.

    python tests/golden/make_golden.py [NAME ...]

Run it only when an output is meant to change, and say why in the commit that updates the files.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from outputs import ROOT, outputs  # noqa: E402
from sets import COMPRESSED, EXPECTED, SETS  # noqa: E402


def main(names: list[str]) -> None:
    for name in names or list(SETS):
        folder = ROOT / EXPECTED / name
        folder.mkdir(parents=True, exist_ok=True)
        for fname, data in outputs(SETS[name]).items():
            if fname in COMPRESSED:  # large and never read by eye: kept gzipped (compared decompressed)
                (folder / (fname + ".gz")).write_bytes(gzip.compress(data, 9, mtime=0))
            else:
                (folder / fname).write_bytes(data)
        print(f"wrote {folder.relative_to(ROOT)}")


if __name__ == "__main__":
    main(sys.argv[1:])
