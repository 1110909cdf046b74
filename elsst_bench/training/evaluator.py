"""The dev-split evaluator the Trainer calls after every epoch (the best epoch is kept).

A sentence-transformers ``SentenceEvaluator`` over the evaluation layer: the same encode → rank → score
path as the test evaluation, on the dev split, no cache. Its primary metric is the benchmark's
(graded nDCG@10), macro over languages per task and then over tasks (the ``main_score`` of metrics.json).
"""

from __future__ import annotations

from sentence_transformers.sentence_transformer.evaluation import SentenceEvaluator

from ..metric_names import DEV_EVALUATOR, PRIMARY_METRIC


class DevEvaluator(SentenceEvaluator):
    """Graded nDCG@10 on the dev split: the macro main score, plus one value per task."""

    def __init__(self, dataset, tasks: list[str], languages: list[str]):
        super().__init__()
        self.dataset = dataset
        self.tasks = list(tasks)
        self.languages = languages
        self.name = DEV_EVALUATOR  # the Trainer logs eval_dev_<metric> (metric_names.dev_key)
        self.primary_metric = PRIMARY_METRIC
        self.greater_is_better = True

    def __call__(self, model, output_path=None, epoch: int = -1, steps: int = -1) -> dict[str, float]:
        from ..evaluation import evaluate_model

        metrics = evaluate_model(model, self.dataset, split="dev", tasks=self.tasks, languages=self.languages,
                                 show_progress=False).metrics
        scores = {PRIMARY_METRIC: float(metrics["main_score"])}
        for task, per_lang in metrics["scores"].items():
            scores[f"{task}_{PRIMARY_METRIC}"] = float(per_lang["macro"][PRIMARY_METRIC])
        return self.prefix_name_to_metrics(scores, self.name)
