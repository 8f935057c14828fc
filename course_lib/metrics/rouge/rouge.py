"""ROUGE as an `evaluate` metric that ships with course_lib, so `evaluate.load(<this folder>)` works offline.

Scores come from Google's `rouge_score` package (the implementation the course's
`evaluate.load("rouge")` wraps). Each reference may be one string or a list of
strings; with several, the best-matching reference counts (`score_multi`).
"""

import datasets
import evaluate
from rouge_score import rouge_scorer

_CITATION = """\
@inproceedings{lin-2004-rouge,
    title = "{ROUGE}: A Package for Automatic Evaluation of Summaries",
    author = "Lin, Chin-Yew",
    booktitle = "Text Summarization Branches Out",
    year = "2004",
    publisher = "Association for Computational Linguistics",
    url = "https://aclanthology.org/W04-1013",
    pages = "74--81",
}
"""

_DESCRIPTION = """\
ROUGE (Recall-Oriented Understudy for Gisting Evaluation) counts the overlap of
unigrams (rouge1), bigrams (rouge2) and the longest common subsequence (rougeL;
rougeLsum splits on newlines first) between a generated text and references.
Scores are F-measures in [0, 1].
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of generated texts.
    references: list of references, one per prediction: a string, or a list of strings.
    rouge_types: subset of ["rouge1", "rouge2", "rougeL", "rougeLsum"] (default: all four).
    use_stemmer: Porter-stem words before matching (default True, as in DialogSum papers).
    use_aggregator: mean over examples (True) or one score per example (False).
Returns:
    dict rouge_type -> mean F-measure (or a list of per-example F-measures).
Examples:
    >>> rouge = evaluate.load("course_lib/metrics/rouge")
    >>> rouge.compute(predictions=["testing"], references=["testing one two"])["rouge1"]
    0.5
"""

ROUGE_TYPES = ["rouge1", "rouge2", "rougeL", "rougeLsum"]


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class CourseRouge(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features({"predictions": datasets.Value("string"),
                                   "references": datasets.Sequence(datasets.Value("string"))}),
                datasets.Features({"predictions": datasets.Value("string"),
                                   "references": datasets.Value("string")}),
            ],
            codebase_urls=["https://github.com/google-research/google-research/tree/master/rouge"],
            reference_urls=["https://aclanthology.org/W04-1013"],
        )

    def _compute(self, predictions, references, rouge_types=None, use_stemmer=True, use_aggregator=True):
        rouge_types = list(rouge_types or ROUGE_TYPES)
        unknown = [t for t in rouge_types if t not in ROUGE_TYPES]
        if unknown:
            raise ValueError(f"Unknown rouge_types {unknown}; choose from {ROUGE_TYPES}.")
        scorer = rouge_scorer.RougeScorer(rouge_types, use_stemmer=use_stemmer)
        per_type = {t: [] for t in rouge_types}
        for prediction, reference in zip(predictions, references):
            refs = [reference] if isinstance(reference, str) else list(reference)
            scores = scorer.score_multi(refs, prediction)  # best reference per rouge type
            for t in rouge_types:
                per_type[t].append(scores[t].fmeasure)
        if not use_aggregator:
            return per_type
        return {t: (sum(v) / len(v) if v else 0.0) for t, v in per_type.items()}
