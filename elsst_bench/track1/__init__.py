"""Track 1 of the OrthoGeoLoRA author's ELSST benchmark (implicit concept retrieval): passages whose concepts are
implied, not named, ranked against a concept pool. A local copy of the release is read and checked
(:mod:`.release`), mapped onto the prepared ELSST concepts where its ids are ELSST's (:mod:`.mapping`), scored with
the track's four metrics (:mod:`.metrics`), trained on as a retrieval task (:mod:`.train`), and turned into a test
submission that passes the published rules (:mod:`.submission`). ``elsst-bench track1 check|evaluate|train|submit``.

The release (JSON lines; the hosted copy is not reachable from here, so nothing in the repository is scored on it):

- ``train.jsonl``, ``val.jsonl``: ``{"id", "text", "document_type", "retrieval_labels": {"positive_ids",
  "hard_negative_ids"}}``;
- ``test_input.jsonl``: ``{"id", "text", "document_type"}``, no labels;
- ``concept_pool.jsonl``: ``{"concept_id", "term", "definition"}``.

A submission is JSON lines ``{"id", "ranked_ids"}``: every test id once, each ranking at least 10 distinct known
concept ids and at most 100.
"""

from .metrics import METRICS, PRIMARY, score
from .release import Concept, Passage, Release, read_release
from .submission import check_submission, write_submission

__all__ = ["METRICS", "PRIMARY", "Concept", "Passage", "Release", "check_submission", "read_release", "score",
           "write_submission"]
