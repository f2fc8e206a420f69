"""Model stage: training, safe artifacts, scorers (local and SageMaker) and reason codes.

Pure cores (`train`, `metrics`, `reasons`) take NumPy arrays; `artifact` and `run` do the I/O.
The pipeline needs only `Scorer`, `build_scorer`/`LocalScorer` and `score_or_unavailable`.
"""

from fraud.model.artifact import Artifact, ArtifactError, Manifest, load_artifact, read_manifest
from fraud.model.reasons import Reasons, explain
from fraud.model.scorer import LocalScorer, Scorer, build_scorer, score_or_unavailable

__all__ = [
    "Artifact",
    "ArtifactError",
    "LocalScorer",
    "Manifest",
    "Reasons",
    "Scorer",
    "build_scorer",
    "explain",
    "load_artifact",
    "read_manifest",
    "score_or_unavailable",
]
