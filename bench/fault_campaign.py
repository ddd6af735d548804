"""The fault campaign from the bench directory: `python bench/fault_campaign.py --rounds 50`.

Same as `python -m tests.soak.campaign`; see docs/faults.md.
"""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root, for `tests`

from tests.soak.campaign import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
