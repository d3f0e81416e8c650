"""The README's main job (``cardiac-atlas demo``, ``bash scripts/demo.sh``): a synthetic cohort of two
independently built phantom families, every method trained on one family and applied, through its runner,
to held-out hearts of both (:mod:`.synthetic_cohort`; one stage per method in ``demo_*.py``, each scoring
the method's outputs against the phantom's ground truth next to the simplest baseline)."""
