"""Cohort batch processing on Dask: manifests, per-subject pipelines, idempotent completion records and
the runner (``cardiac-atlas batch``). See :mod:`.runner` for the model of execution and
:mod:`.completion` for the on-disk layout."""

from .completion import BatchError, completed_subjects, is_complete, read_record, subject_folder
from .manifest import ManifestEntry, ManifestError, manifest_from_folder, read_manifest, write_manifest
from .pipelines import PIPELINES, OptionSpec, Pipeline, get_pipeline, register_pipeline
from .runner import BatchResult, SubjectOutcome, dask_client, process_subject, run_batch

__all__ = [
    "BatchError", "BatchResult", "ManifestEntry", "ManifestError", "OptionSpec", "PIPELINES", "Pipeline",
    "SubjectOutcome", "completed_subjects", "dask_client", "get_pipeline", "is_complete", "manifest_from_folder",
    "process_subject", "read_manifest", "read_record", "register_pipeline", "run_batch", "subject_folder",
    "write_manifest",
]
