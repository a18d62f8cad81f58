"""Answers compared and combined: the canonical form of a result, majority vote and Dawid-Skene.

A result's shape depends on the task (003: a label, a triple, custom input boxes, face points), so
answers are compared by a canonical string: single-element lists and `{"tag_result": ...}` wrappers are
unwrapped, strings stripped, anything else is JSON with sorted keys. A standard answer (a CSV cell: a
label or JSON) goes through the same function.

Dawid-Skene (1979) estimates, by EM, each annotator's confusion matrix (how likely they give label l
when the truth is k) and each question's posterior over labels. It is initialised with the majority
vote's label shares, and it lets reliable annotators outvote a majority of unreliable ones. Each
annotator's estimated accuracy is the posterior probability that their answers are right.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# Dawid-Skene runs where a question has at least this many answers (the rule).
MIN_DS_ANSWERS = 3
SMOOTHING = 0.01


def _unwrap(value: Any) -> Any:
    while True:
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        elif isinstance(value, dict) and "tag_result" in value and set(value) <= {"tag_result", "input_type"}:
            value = value["tag_result"]
        else:
            return value


def canonical(value: Any) -> str:
    value = _unwrap(value)
    if isinstance(value, str):
        return value.strip()
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def answer_key(result: Any, input_result: Any = None) -> str:
    if input_result in (None, [], {}, ""):
        return canonical(result)
    return canonical([result, input_result])


def cell_answer(cell: str) -> str:
    """A CSV cell as an answer: JSON when it reads as JSON (a list or an object), else the text."""
    text = cell.strip()
    if text[:1] in ("[", "{", '"'):
        try:
            return canonical(json.loads(text))
        except ValueError:
            pass
    return canonical(text)


@dataclass
class Vote:
    answer: str
    votes: int
    total: int


def majority(keys: Sequence[str]) -> Vote | None:
    """The most frequent answer; a tie goes to the answer given first (the lowest annotator id)."""
    if not keys:
        return None
    counts = Counter(keys)
    best = max(counts.values())
    winner = next(k for k in keys if counts[k] == best)
    return Vote(winner, best, len(keys))


def dawid_skene(
    items: np.ndarray,
    workers: np.ndarray,
    labels: np.ndarray,
    n_items: int,
    n_workers: int,
    n_labels: int,
    max_iter: int = 100,
    tol: float = 1e-6,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """EM over observations (item, worker, label), all int arrays of the same length.

    Returns (posterior [items x labels], confusion [workers x labels x labels], priors, iterations).
    """
    if n_labels == 1:
        posterior = np.ones((n_items, 1))
        return posterior, np.ones((n_workers, 1, 1)), np.ones(1), 0
    # Initialise with each item's label shares (the soft majority vote).
    posterior = np.zeros((n_items, n_labels))
    np.add.at(posterior, (items, labels), 1.0)
    posterior /= np.maximum(posterior.sum(axis=1, keepdims=True), 1e-12)
    iteration = 0
    while iteration < max_iter:
        iteration += 1
        # M-step: priors and every annotator's confusion matrix from the current posteriors.
        priors = posterior.sum(axis=0) + SMOOTHING
        priors /= priors.sum()
        confusion = np.full((n_workers, n_labels, n_labels), SMOOTHING)
        # confusion[w, k, l] += posterior[i, k] for each observation (i, w, l). numpy's stubs type
        # ufunc.at's indices as integer arrays only; it takes a tuple with slices like any indexing.
        np.add.at(confusion, (workers, slice(None), labels), posterior[items])  # type: ignore[arg-type]
        confusion /= confusion.sum(axis=2, keepdims=True)
        # E-step: log posterior of each item = log prior + sum of log confusion of its answers.
        log_post = np.tile(np.log(priors), (n_items, 1))
        np.add.at(log_post, items, np.log(confusion[workers, :, labels]))
        log_post -= log_post.max(axis=1, keepdims=True)
        updated = np.exp(log_post)
        updated /= updated.sum(axis=1, keepdims=True)
        change = float(np.abs(updated - posterior).max())
        posterior = updated
        if change < tol:
            break
    return posterior, confusion, priors, iteration


def consolidate(
    answers: Sequence[tuple[int, int, str]],
) -> tuple[dict[int, Vote], dict[int, tuple[str, float]], dict[int, float], int]:
    """(q_id, user_id, answer_key) -> majority per question, Dawid-Skene answer (and its posterior
    probability) per question with at least MIN_DS_ANSWERS answers, estimated accuracy per annotator,
    and the EM's iteration count (0 when Dawid-Skene did not run)."""
    by_question: dict[int, list[str]] = {}
    for q_id, _, key in answers:
        by_question.setdefault(q_id, []).append(key)
    votes = {q_id: vote for q_id, keys in by_question.items() if (vote := majority(keys)) is not None}

    q_index = {q_id: i for i, q_id in enumerate(sorted(by_question))}
    user_ids = sorted({user_id for _, user_id, _ in answers})
    u_index = {user_id: i for i, user_id in enumerate(user_ids)}
    label_list = sorted({key for _, _, key in answers})
    l_index = {label: i for i, label in enumerate(label_list)}
    accuracy: dict[int, float] = {}
    ds_answers: dict[int, tuple[str, float]] = {}
    if not answers:
        return votes, ds_answers, accuracy, 0
    items = np.array([q_index[q] for q, _, _ in answers], dtype=np.int64)
    workers = np.array([u_index[u] for _, u, _ in answers], dtype=np.int64)
    labels = np.array([l_index[k] for _, _, k in answers], dtype=np.int64)
    run_ds = any(len(keys) >= MIN_DS_ANSWERS for keys in by_question.values())
    if run_ds:
        posterior, _, _, iterations = dawid_skene(items, workers, labels, len(q_index), len(user_ids), len(label_list))
        for q_id, i in q_index.items():
            if len(by_question[q_id]) >= MIN_DS_ANSWERS:
                best = int(np.argmax(posterior[i]))
                ds_answers[q_id] = (label_list[best], float(posterior[i, best]))
        right = posterior[items, labels]
    else:
        iterations = 0
        # Without Dawid-Skene, an annotator's accuracy is their agreement with the majority.
        right = np.array([1.0 if votes[q].answer == k else 0.0 for q, _, k in answers])
    sums = np.bincount(workers, weights=right, minlength=len(user_ids))
    counts = np.bincount(workers, minlength=len(user_ids))
    for user_id, i in u_index.items():
        accuracy[user_id] = float(sums[i] / counts[i]) if counts[i] else 0.0
    return votes, ds_answers, accuracy, iterations
