"""Property tests for the sim task families: pixels round-trip to states, solvers are optimal,
physics violations are caught, and the action grammar round-trips."""

from __future__ import annotations

import io
from collections import deque

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collabvr.backends.sim.families import DIFFICULTIES, FAMILIES, detect_family, get_family
from collabvr.backends.sim.families.base import MEMO_MAX_SIDE, DecodeError, Family, IllegalMove, forget_reads

NAMES = list(FAMILIES)
SETTINGS = settings(max_examples=40, deadline=None, database=None)  # no .hypothesis/ in the checkout
seeds = st.integers(0, 2**32 - 1)


def walk(family: Family, seed: int, steps: int, difficulty: str = "medium") -> list:
    """A generated instance followed by a random legal walk: reachable states."""
    rng = np.random.default_rng(seed)
    states = [family.generate(difficulty, rng)]
    for _ in range(steps):
        moves = family.moves(states[-1])
        states.append(family.apply(states[-1], moves[int(rng.integers(len(moves)))]))
    return states


def through_mp4(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Encode with libx264 yuv420p crf 16 in memory and decode again, like a real generated clip."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=8)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "16"}
        for frame in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    buf.seek(0)
    with av.open(buf) as inp:
        return [f.to_ndarray(format="rgb24") for f in inp.decode(video=0)]


def brute_distance(family: Family, state) -> int | None:
    """Plain BFS over moves/apply, independent of the family's solver."""
    seen, queue = {state}, deque([(state, 0)])
    while queue:
        s, d = queue.popleft()
        if family.is_goal(s):
            return d
        for m in family.moves(s):
            n = family.apply(s, m)
            if n not in seen:
                seen.add(n)
                queue.append((n, d + 1))
    return None


def greedy_rollout_solves(family: Family, state, rng: np.random.Generator, limit: int = 40) -> bool:
    """Follow greedy while it stays legal; True if it reaches the goal."""
    for _ in range(limit):
        if family.is_goal(state):
            return True
        nxt = family.greedy(state, rng)
        if not family.transition_ok(state, nxt):
            return False
        state = nxt
    return family.is_goal(state)


# --------------------------------------------------------------------------- registry


def test_registry() -> None:
    assert set(FAMILIES) == {"maze", "tiles", "sokoban", "sort"}
    assert get_family("maze") is FAMILIES["maze"]
    with pytest.raises(KeyError, match="maze"):
        get_family("chess")
    backgrounds = [np.array(f.background) for f in FAMILIES.values()]
    for i, a in enumerate(backgrounds):
        for b in backgrounds[i + 1 :]:
            assert np.linalg.norm(a - b) > 80


@pytest.mark.parametrize("name", NAMES)
def test_unknown_difficulty(name: str) -> None:
    with pytest.raises(ValueError, match="easy"):
        FAMILIES[name].generate("extreme", np.random.default_rng(0))


# --------------------------------------------------------------------------- pixels


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(seed=seeds, steps=st.integers(0, 12))
def test_render_decode_roundtrip(name: str, seed: int, steps: int) -> None:
    family = FAMILIES[name]
    state = walk(family, seed, steps)[-1]
    frame = family.render(state)
    assert frame.shape == (256, 256, 3) and frame.dtype == np.uint8
    assert family.decode(frame) == state


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [128, 1024])
def test_roundtrip_other_sizes(name: str, size: int) -> None:
    family = FAMILIES[name]
    for state in walk(family, 7, 5, "hard"):
        frame = family.render(state, size)
        assert frame.shape == (size, size, 3)
        assert family.decode(frame) == state


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [128, 256])
def test_roundtrip_through_mp4(name: str, size: int) -> None:
    family = FAMILIES[name]
    states = walk(family, 11, 4, "hard")
    clip = [(a, b, alpha) for a, b in zip(states, states[1:], strict=False) for alpha in (0.0, 0.3, 0.7)]
    decoded = through_mp4([family.render_motion(a, b, alpha, size) for a, b, alpha in clip])
    assert len(decoded) == len(clip)
    for frame, (a, b, alpha) in zip(decoded, clip, strict=True):
        assert family.decode(frame) == (a if alpha < 0.5 else b)


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(seed=seeds, steps=st.integers(1, 8), alpha=st.floats(0.01, 0.99))
def test_mid_motion_decodes_to_an_endpoint(name: str, seed: int, steps: int, alpha: float) -> None:
    family = FAMILIES[name]
    s0, s1 = walk(family, seed, steps)[-2:]
    assert family.decode(family.render_motion(s0, s1, alpha)) in (s0, s1)
    assert family.decode(family.render_motion(s0, s1, 0.5)) in (s0, s1)
    assert np.array_equal(family.render_motion(s0, s1, 0.0), family.render(s0))
    assert np.array_equal(family.render_motion(s0, s1, 1.0), family.render(s1))


@pytest.mark.parametrize("name", NAMES)
def test_greedy_and_violation_motion(name: str) -> None:
    """Greedy (possibly illegal) steps still decode mid-clip; teleports and vanishing cut from s0 to s1."""
    family = FAMILIES[name]
    rng = np.random.default_rng(3)
    for seed in range(8):
        s0 = walk(family, seed, 3, "hard")[-1]
        s1 = family.greedy(s0, rng)
        for alpha in (0.25, 0.75):
            assert family.decode(family.render_motion(s0, s1, alpha)) in (s0, s1)
        v, kind = family.violate(s0, rng)
        if kind == "wall_pass":  # a one-cell displacement slides like a move
            assert family.decode(family.render_motion(s0, v, 0.3)) == s0
            assert family.decode(family.render_motion(s0, v, 0.7)) == v
        else:
            assert np.array_equal(family.render_motion(s0, v, 0.4), family.render(s0))
            assert np.array_equal(family.render_motion(s0, v, 0.6), family.render(v))


@pytest.mark.parametrize("name", NAMES)
def test_detect_family(name: str) -> None:
    family = FAMILIES[name]
    for size in (128, 256, 1024):
        assert detect_family(family.render(walk(family, size, 2)[-1], size)) is family


def test_detect_family_rejects_noise() -> None:
    noise = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    with pytest.raises(DecodeError):
        detect_family(noise)
    for family in FAMILIES.values():
        with pytest.raises(DecodeError):
            family.decode(noise)


@pytest.mark.parametrize("name", NAMES)
def test_decode_rejects_other_families(name: str) -> None:
    family = FAMILIES[name]
    for other in FAMILIES.values():
        if other is not family:
            frame = other.render(other.generate("easy", np.random.default_rng(0)))
            with pytest.raises(DecodeError):
                family.decode(frame)


# --------------------------------------------------------------------------- instances and search


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_generate_length_range_and_determinism(name: str, difficulty: str) -> None:
    family = FAMILIES[name]
    lo, hi = family.lengths[difficulty]
    for seed in range(10):
        state = family.generate(difficulty, np.random.default_rng(seed))
        assert lo <= family.distance(state) <= hi
        assert family.generate(difficulty, np.random.default_rng(seed)) == state


@pytest.mark.parametrize("name", NAMES)
def test_solve_is_optimal_and_reaches_goal(name: str) -> None:
    family = FAMILIES[name]
    for seed in range(6):
        state = family.generate("easy", np.random.default_rng(seed))
        plan = family.solve(state)
        assert plan is not None and len(plan) == brute_distance(family, state)
        for move in plan:
            state = family.apply(state, move)
        assert family.is_goal(state) and family.solve(state) == []
    hard = family.generate("hard", np.random.default_rng(0))
    plan = family.solve(hard)
    for move in plan:
        hard = family.apply(hard, move)
    assert family.is_goal(hard)


@pytest.mark.parametrize("name", NAMES)
def test_transitions(name: str) -> None:
    family = FAMILIES[name]
    rng = np.random.default_rng(5)
    kinds = set()
    for seed in range(20):
        state = walk(family, seed, 2)[-1]
        for move in family.moves(state):
            assert family.transition_ok(state, family.apply(state, move))
        assert family.transition_ok(state, state)
        with pytest.raises(IllegalMove):
            family.apply(state, "sideways")
        bad, kind = family.violate(state, rng)
        kinds.add(kind)
        assert kind in {"teleport", "wall_pass", "vanish"}
        assert not family.transition_ok(state, bad)
        if kind == "vanish":
            with pytest.raises(DecodeError):
                family.decode(family.render(bad))
        else:
            decoded = family.decode(family.render(bad))
            assert decoded == bad and not family.transition_ok(state, decoded)
        first, legal = family.moves(state)[0], family.moves(state)
        wrong = family.wrong_move(state, first, rng)
        assert (wrong in legal and wrong != first) if len(legal) > 1 else wrong is None
    assert {"teleport", "vanish"} <= kinds


@pytest.mark.parametrize("name", NAMES)
def test_greedy_is_a_visual_prior(name: str) -> None:
    family = FAMILIES[name]
    easy = [
        greedy_rollout_solves(
            family, family.generate("easy", np.random.default_rng(s)), np.random.default_rng(s + 100)
        )
        for s in range(20)
    ]
    hard = [
        greedy_rollout_solves(
            family, family.generate("hard", np.random.default_rng(s)), np.random.default_rng(s + 100)
        )
        for s in range(20)
    ]
    assert any(easy) and not all(hard)
    goal_state = walk(family, 0, 0, "easy")[0]
    for move in family.solve(goal_state):
        goal_state = family.apply(goal_state, move)
    assert family.greedy(goal_state, np.random.default_rng(0)) == goal_state


def test_maze_is_braided() -> None:
    """Braiding leaves loops: the floor graph has more edges than a spanning tree."""
    maze = FAMILIES["maze"]
    loopy = 0
    for seed in range(10):
        walls = maze.generate("medium", np.random.default_rng(seed)).walls
        floor = {(r, c) for r, row in enumerate(walls) for c, ch in enumerate(row) if ch == "."}
        edges = sum((r + 1, c) in floor for r, c in floor) + sum((r, c + 1) in floor for r, c in floor)
        loopy += edges > len(floor) - 1
    assert loopy >= 5


# --------------------------------------------------------------------------- grammar

PHRASINGS = {
    "maze": [
        ("move up", ["up"]),
        ("go left", ["left"]),
        ("down", ["down"]),
        ("move up 3 times", ["up"] * 3),
        ("move right x2", ["right"] * 2),
        ("up 2", ["up"] * 2),
        ("Move up, go left; down then right\nleft", ["up", "left", "down", "right", "left"]),
    ],
    "tiles": [
        ("slide the blank up", ["up"]),
        ("move the blank left", ["left"]),
        ("blank down", ["down"]),
        ("right", ["right"]),
        ("slide the blank up 2 times", ["up"] * 2),
        ("blank left x3", ["left"] * 3),
        ("Slide the blank up, then blank left; down\nright 2", ["up", "left", "down", "right", "right"]),
    ],
    "sokoban": [
        ("move up", ["up"]),
        ("go down", ["down"]),
        ("left", ["left"]),
        ("go right 2 times", ["right"] * 2),
        ("move up x2", ["up"] * 2),
        ("left 3", ["left"] * 3),
        ("Go up then move left, down; right", ["up", "left", "down", "right"]),
    ],
    "sort": [
        ("swap 2 3", ["swap 2 3"]),
        ("swap bars 4 and 5", ["swap 4 5"]),
        ("swap slots 1 and 2", ["swap 1 2"]),
        (
            "Swap 2 3, swap bars 3 and 4; swap slots 5 and 6 then swap 1 2\nswap 6 7",
            ["swap 2 3", "swap 3 4", "swap 5 6", "swap 1 2", "swap 6 7"],
        ),
    ],
}


@pytest.mark.parametrize("name", NAMES)
def test_parse_phrasings(name: str) -> None:
    family = FAMILIES[name]
    for text, moves in PHRASINGS[name]:
        assert family.parse(text) == moves, text
        assert family.parse(text.upper()) == moves, text


@pytest.mark.parametrize("name", NAMES)
def test_parse_ignores_correction_and_raw_prompt(name: str) -> None:
    family = FAMILIES[name]
    text, moves = PHRASINGS[name][0]
    later = PHRASINGS[name][1][0]
    assert family.parse(f"{text}\nCorrection: that was wrong.\n{later}") == moves
    assert family.parse(f"{text}\n{later}") == moves + PHRASINGS[name][1][1]
    state = family.generate("medium", np.random.default_rng(0))
    assert family.parse(family.prompt(state)) == []
    assert family.parse(family.state_text(state)) == []
    assert family.parse("") == []


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(data=st.data())
def test_describe_parse_roundtrip(name: str, data: st.DataObject) -> None:
    family = FAMILIES[name]
    vocabulary = family.moves(family.generate("easy", np.random.default_rng(0)))
    vocabulary = sorted(set(vocabulary) | ({"up", "down", "left", "right"} if name != "sort" else set()))
    moves = data.draw(st.lists(st.sampled_from(vocabulary), max_size=15))
    assert family.parse(family.describe(moves)) == moves


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_states_survive_the_three_encodes_of_a_spliced_clip_at_128px(name):
    """Partial regeneration trims a stored clip (second encode) and splices it (third): the verifier
    must still read every frame of the good prefix as the state it shows."""
    from collabvr.media import Video

    fam = FAMILIES[name]
    wrong = 0
    for seed in range(4):
        state = fam.generate("hard", np.random.default_rng(seed))
        states = [state]
        for move in fam.solve(state)[:8]:
            states.append(fam.apply(states[-1], move))
        frames, truth = [fam.render(states[0], 128)], [{states[0]}]
        for a, b in zip(states, states[1:], strict=False):
            for k in range(1, 5):
                frames.append(fam.render_motion(a, b, k / 4, 128))
                truth.append({a, b} if k < 4 else {b})
        video = Video(frames=np.stack(frames), fps=16)
        for _ in range(3):
            video = Video(mp4=Video(frames=np.array(video.frames), fps=16).mp4, fps=16)
        for frame, allowed in zip(video.frames, truth, strict=True):
            try:
                wrong += fam.decode(frame) not in allowed
            except DecodeError:
                wrong += 1
    assert wrong == 0


def counted(name: str, label: str) -> Family:
    """The real family's decoder under another name (so it has a memory of its own), counting the
    decodes in ``.calls``."""

    class Counting(type(FAMILIES[name])):
        calls = 0

        def decode(self, frame: np.ndarray):
            type(self).calls += 1
            return super().decode(frame)

    family = Counting()
    family.name = f"{name}-{label}"
    return family


@pytest.mark.parametrize("name", NAMES)
def test_read_remembers_decoded_states_by_frame_content(name: str) -> None:
    """Family.read is decode() remembered by content: equal pixels are decoded once, other pixels
    are decoded afresh, and an unreadable frame raises the same error every time."""
    real, family = FAMILIES[name], counted(name, "read")
    forget_reads()
    states = walk(real, 7, 2)
    frames = [real.render(s, 128) for s in states]
    distinct = len({f.tobytes() for f in frames})
    assert [family.read(f) for f in frames] == states
    assert family.calls == distinct
    assert [family.read(f.copy()) for f in frames] == states  # equal content, other arrays
    assert family.read(frames[0][:, ::-1][:, ::-1]) == states[0]  # a non-contiguous view
    assert family.calls == distinct
    broken = np.full_like(frames[0], 128)
    for _ in range(2):
        with pytest.raises(DecodeError):
            family.read(broken)
    assert family.calls == distinct + 1
    forget_reads()
    assert family.read(frames[0]) == states[0]
    assert family.calls == distinct + 2


def test_read_decodes_large_frames_afresh() -> None:
    """Hashing a large frame costs more than decoding it (decode samples about WORK_RES a side)."""
    real, family = FAMILIES["maze"], counted("maze", "large")
    state = walk(real, 3, 1)[-1]
    small, large = real.render(state, MEMO_MAX_SIDE), real.render(state, MEMO_MAX_SIDE + 2)
    assert [family.read(small) for _ in range(3)] == [state] * 3
    assert family.calls == 1
    assert [family.read(large) for _ in range(3)] == [state] * 3
    assert family.calls == 4
