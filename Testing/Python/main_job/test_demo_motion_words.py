"""The main job's motion report says which full-cycle motion ran (the svf trajectory or the refined chain)."""

from CardiacMotionAtlasLib.main_job.demo_motion import _trajectory_words


def test_svf_trajectory_is_named_and_the_chain_keeps_its_refinement_words():
    svf = _trajectory_words({"trajectory": "svf", "refine_steps": 0})
    assert "velocity field" in svf and "refined" not in svf
    chain = _trajectory_words({"trajectory": "chain", "refine_steps": 5, "refine_targets": "the given ED/ES labels"})
    assert "5 steps" in chain and "the given ED/ES labels" in chain
    assert "SegNet's labels" in _trajectory_words({})  # a summary from before the trajectory was recorded
