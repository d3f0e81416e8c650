"""Headless batch entry for 3D Slicer:

    Slicer --no-main-window --python-script CardiacMotionAtlasBatch.py --input DIR --output DIR

Processes every study folder in DIR with the module's Logic and writes one scene bundle per subject
and a summary.csv (see CardiacMotionAtlasLib.mrml.batch). Also runs in plain Python with slicer-core.
"""

import sys

from CardiacMotionAtlasLib.mrml.batch import main

status = main(sys.argv[1:])
try:
    import slicer

    application = getattr(slicer, "app", None)
except ImportError:
    application = None
if application is not None:
    application.exit(status)
else:
    sys.exit(status)
