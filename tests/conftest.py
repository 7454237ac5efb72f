from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from collabvr.media import Image
from collabvr.task import Task


@pytest.fixture
def user_task(tmp_path: Path) -> Task:
    """A user task: a grey first frame on disk plus a prompt."""
    path = tmp_path / "first.png"
    path.write_bytes(Image(np.full((64, 64, 3), 128, np.uint8)).to_png())
    return Task.from_image(path, "reach the goal")
