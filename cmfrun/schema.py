"""Type and property names of the records, following the CMF MLMD contract.

See ``docs/schema.md`` for the contract's quirks and what cmfrun decided about
each. Property kinds are ``"STRING"``, ``"INT"`` or ``"DOUBLE"``.
"""
from __future__ import annotations

from typing import Dict, Mapping

#: Bumped when what cmfrun persists changes shape; stored in the store itself.
STORE_SCHEMA_VERSION = 1

PIPELINE_CONTEXT = "Parent_Context"
STAGE_CONTEXT = "Pipeline_Stage"
#: cmfrun's own bookkeeping context type (holds the store schema version).
META_CONTEXT = "cmfrun_Store"

CONTEXT_PROPERTIES: Mapping[str, Mapping[str, str]] = {
    PIPELINE_CONTEXT: {"Pipeline": "STRING"},
    STAGE_CONTEXT: {"Pipeline_Stage": "STRING"},
    META_CONTEXT: {"schema_version": "INT"},
}

#: Properties CMF declares on every execution type, all set on every execution.
CMF_EXECUTION_PROPERTIES: Mapping[str, str] = {
    "Context_Type": "STRING",
    "Execution_type_name": "STRING",
    "Context_ID": "INT",
    "Pipeline_Type": "STRING",
    "Pipeline_id": "INT",
    "Execution": "STRING",
    "Execution_uuid": "STRING",
    "Git_Repo": "STRING",
    "Git_Start_Commit": "STRING",
    "Git_End_Commit": "STRING",
}

#: What cmfrun records beyond CMF (declared too, so MLMD accepts them; empty when unknown).
CMFRUN_EXECUTION_PROPERTIES: Mapping[str, str] = {
    "Git_Dirty": "INT",
    "Stage": "STRING",
    # Epoch milliseconds overflow MLMD's 32-bit int column on PostgreSQL/MySQL: doubles hold them exactly.
    "Start_Time_ms": "DOUBLE",
    "End_Time_ms": "DOUBLE",
    "Duration_s": "DOUBLE",
    "Exit_Code": "INT",
    "Working_Dir": "STRING",
    "Host": "STRING",
    "User": "STRING",
    "Peak_RSS_KiB": "INT",
    "CPU_Time_s": "DOUBLE",
    "Recorded_By": "STRING",
    # Set by `cmf dvc ingest`: the md5 of the lock stage merged into this execution.
    "Lock_Fingerprint": "STRING",
}

EXECUTION_PROPERTIES: Mapping[str, str] = {**CMF_EXECUTION_PROPERTIES, **CMFRUN_EXECUTION_PROPERTIES}

DATASET = "Dataset"
MODEL = "Model"
METRICS = "Metrics"
STEP_METRICS = "Step_Metrics"
DATASLICE = "Dataslice"
LABEL = "Label"
ENVIRONMENT = "Environment"
VALIDATION_OUTPUT = "Validation_output"

ARTIFACT_PROPERTIES: Mapping[str, Mapping[str, str]] = {
    DATASET: {"git_repo": "STRING", "Commit": "STRING", "url": "STRING"},
    MODEL: {
        "model_framework": "STRING",
        "model_type": "STRING",
        "model_name": "STRING",
        "Commit": "STRING",
        "url": "STRING",
    },
    LABEL: {"git_repo": "STRING", "Commit": "STRING", "url": "STRING"},
    ENVIRONMENT: {"git_repo": "STRING", "Commit": "STRING", "url": "STRING"},
    DATASLICE: {"git_repo": "STRING", "Commit": "STRING", "url": "STRING"},
    STEP_METRICS: {"Commit": "STRING", "url": "STRING"},
    METRICS: {"metrics_name": "STRING"},
    VALIDATION_OUTPUT: {"version": "STRING"},
}

#: Artifact types whose identity is file content (uri = DVC md5).
FILE_ARTIFACT_TYPES = (DATASET, MODEL, LABEL, ENVIRONMENT, DATASLICE, STEP_METRICS)


def stage_context_name(pipeline: str, stage: str) -> str:
    """CMF's stage context name: ``<pipeline>/<stage>``.

    >>> stage_context_name("demo", "train")
    'demo/train'
    """
    return f"{pipeline}/{stage}"


def artifact_name(path: str, content_hash: str) -> str:
    """CMF's name for a file artifact: ``<path>:<hash>``."""
    return f"{path}:{content_hash}"


def model_name(path: str, content_hash: str, creator: object) -> str:
    """CMF's model name ``<path>:<hash>:<creating execution>``.

    The API uses the execution id as CMF does; the wrapper and ingest, which
    write the execution and its models in one transaction before the id
    exists, use the execution's uuid (docs/schema.md, naming).
    """
    return f"{path}:{content_hash}:{creator}"


def artifact_url(pipeline: str, location: str) -> str:
    """CMF's ``url`` property: ``<pipeline>:<remote location>``."""
    return f"{pipeline}:{location}"


def merge_url(existing: str, pipeline: str, location: str) -> str:
    """Append ``,<pipeline>:<location>`` unless that pipeline is already listed."""
    entries = [e for e in existing.split(",") if e]
    if any(e.split(":", 1)[0] == pipeline for e in entries):
        return existing
    return ",".join(entries + [artifact_url(pipeline, location)])


def extend_url(url: str, pipeline: str) -> str:
    """An existing artifact's ``url`` with ``pipeline`` added (same location as the first entry)."""
    if not url:
        return url
    location = url.split(",")[0].split(":", 1)[-1]
    return merge_url(url, pipeline, location)


def dvc_location(remote_root: str, md5: str) -> str:
    """DVC 3's object path under a remote root: ``<root>/files/md5/ab/cdef...``."""
    bare = md5[:-4] if md5.endswith(".dir") else md5
    suffix = ".dir" if md5.endswith(".dir") else ""
    root = remote_root.rstrip("/")
    return f"{root}/files/md5/{bare[:2]}/{bare[2:]}{suffix}"


def property_kinds(type_name: str) -> Dict[str, str]:
    """Declared properties of an artifact type (an empty dict for unknown types)."""
    return dict(ARTIFACT_PROPERTIES.get(type_name, {}))


__all__ = [
    "STORE_SCHEMA_VERSION",
    "PIPELINE_CONTEXT",
    "STAGE_CONTEXT",
    "META_CONTEXT",
    "CONTEXT_PROPERTIES",
    "CMF_EXECUTION_PROPERTIES",
    "CMFRUN_EXECUTION_PROPERTIES",
    "EXECUTION_PROPERTIES",
    "ARTIFACT_PROPERTIES",
    "FILE_ARTIFACT_TYPES",
    "DATASET",
    "MODEL",
    "METRICS",
    "STEP_METRICS",
    "DATASLICE",
    "LABEL",
    "ENVIRONMENT",
    "VALIDATION_OUTPUT",
    "stage_context_name",
    "artifact_name",
    "model_name",
    "artifact_url",
    "merge_url",
    "extend_url",
    "dvc_location",
    "property_kinds",
]
