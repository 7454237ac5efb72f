from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from collabvr.media import Image
from collabvr.task import Task

# google-auth must never probe the GCE metadata server (169.254.169.254) from a test. It honours
# NO_GCE_CHECK only when exactly "true", read once when google.auth.compute_engine._metadata is
# first imported, so it is set here, before any test imports it.
os.environ["NO_GCE_CHECK"] = "true"


@pytest.fixture
def user_task(tmp_path: Path) -> Task:
    """A user task: a grey first frame on disk plus a prompt."""
    path = tmp_path / "first.png"
    path.write_bytes(Image(np.full((64, 64, 3), 128, np.uint8)).to_png())
    return Task.from_image(path, "reach the goal")
