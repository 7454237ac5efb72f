"""Stand-in task registry: a few official task names, and the sim suite's task folders (collabvr
export-suite writes them) so tests can score bench runs; sim-sokoban-hard is left without an evaluator."""

TASK_EVALUATOR_MAP = {name: object for name in (
    "O-47_sliding_puzzle_data-generator", "G-45_key_door_matching_data-generator",
    "G-135_select_next_figure_small_large_alternating_sequence_data-generator",
    "sim-maze-easy", "sim-maze-medium", "sim-maze-hard", "sim-sort-easy", "sim-tiles-easy",
)}
OUT_OF_DOMAIN_PREFIXES = ("G-135_",)


def is_out_of_domain(task_name):
    return task_name.startswith(OUT_OF_DOMAIN_PREFIXES)


def get_task_category(task_name):
    return "Abstraction"
