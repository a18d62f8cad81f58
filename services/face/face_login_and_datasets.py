"""What other services ask of the face engine over /internal (never routed by the gateway).

Face login (auth, services/auth/face_client.py): every user who binds a face has one vector, target id
= the user id, in the reserved users collection, which document 002's API can neither see nor touch.

* enroll: the image's largest face replaces the user's vector, unless it is already another user's face
  (their best match scores at least `face_login_min_score`, the calibrated same-person threshold):
  003 binds a face "if it is not bound to a user yet". The check runs under the collection's lock,
  against an index brought to the locked version, so two accounts can never bind one face at once.
* identify: the best match, if it reaches the threshold; a stranger is `no_match`.

Face datasets (dataset, services/dataset/enrolment.py): a labelled image of dataset N becomes a vector
of target id = its label in collection "dataset-N" (kind "dataset", made on first use, outside 002's
quota of collections but under its per-target quota), which belongs to the dataset's owner (a
"dataset-N" made before collections had owners is theirs from its next enrolment on). A retry is recognised by its `enrolment_id`, and
the same image under the same label (its `image_key`, a sha256) is stored once.

Enrolment, binding and face login apply the quality gate (services/face/quality.py): a face that is no
plausible face in any orientation, or too small, unclear, blurred, turned aside or tilted, is refused as
`unusable_face`, with the failed check in `check` (no_plausible_face, face_too_small, face_unclear,
face_blurred, face_turned, face_tilted) and the measurement against its threshold in `detail`.

Refusals carry a `reason`: 422 no_face | unusable_face | bad_image | already_registered | no_match,
413 too_large, 409 quota_exceeded | model_mismatch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from services.face.calibration import for_model
from services.face.collection_operations import AfterCommit, FaceContext, check_model, store_features
from services.face.errors import ModelMismatch
from services.face.image_embedding import DECODE_REASONS, NO_FACE, TOO_LARGE, ImageProblem
from services.face.index_registry import CollectionIndex
from services.face.repository import DATASET, USERS, USERS_COLLECTION, CollectionRow, FaceRepository, NewFeature


class Refusal(Exception):
    """The answer {"reason", "detail"} (and "check", for an unusable face) with `status`."""

    def __init__(self, status: int, reason: str, detail: str, check: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail, self.check = status, reason, detail, check


def _image_refusal(problem: ImageProblem) -> Refusal:
    detail = problem.detail.replace("image 0: ", "").replace("image 0 ", "image ")
    if problem.reason == NO_FACE:
        return Refusal(422, "no_face", detail)
    if problem.reason == TOO_LARGE:
        return Refusal(413, "too_large", detail)
    if problem.reason in DECODE_REASONS:
        return Refusal(422, "bad_image", detail)
    return Refusal(422, "unusable_face", detail, check=problem.reason)


async def _vector(ctx: FaceContext, image: Any) -> np.ndarray:
    """The image's face as enrolment and face login take it: through the quality gate."""
    try:
        return await ctx.recognizer.embed_one(image, gate=True)
    except ImageProblem as problem:
        raise _image_refusal(problem) from None


def _model_refusal(row: CollectionRow, model: str, has_vectors: bool) -> None:
    try:
        check_model(row, model, has_vectors)
    except ModelMismatch as exc:
        raise Refusal(409, "model_mismatch", exc.message) from None


def _searchable(state: CollectionIndex | None, dim: int) -> bool:
    return state is not None and state.size > 0 and state.dim == dim


# --- face login ----------------------------------------------------------------------------------


async def enroll_user(
    ctx: FaceContext, repo: FaceRepository, user_id: int, image: Any, after_commit: AfterCommit
) -> None:
    engine = ctx.recognizer.require()
    vector = await _vector(ctx, image)
    await repo.ensure_collection(USERS, None, USERS_COLLECTION, engine.model_name, engine.dim)
    row = await repo.collection(USERS, None, USERS_COLLECTION, lock=True)
    assert row is not None
    state = await ctx.registry.current(row.id, row.version)
    _model_refusal(row, engine.model_name, state is not None and state.size > 0)
    me = str(user_id)
    if state is not None and _searchable(state, engine.dim):
        calibration = for_model(row.model or engine.model_name)
        for match in await ctx.registry.search(state, vector, 2, 1):
            if match.target_id != me and calibration.score(match.cosine) >= ctx.settings.face_login_min_score:
                raise Refusal(422, "already_registered", "this face is already bound to another account")
    old = (await repo.feature_ids_by_target(row.id, [me])).get(me, [])
    await repo.delete_features(old)
    change = await store_features(repo, row, engine, [NewFeature(me, vector)])
    change.removed = old
    ctx.publish_after(after_commit, change)


async def identify_user(ctx: FaceContext, image: Any) -> int:
    engine = ctx.recognizer.require()
    vector = await _vector(ctx, image)
    row = await ctx.read(lambda repo: repo.collection(USERS, None, USERS_COLLECTION))
    state = None if row is None else await ctx.registry.current(row.id, row.version)
    if row is None or state is None or state.size == 0:
        raise Refusal(422, "no_match", "no account has bound a face")
    _model_refusal(row, engine.model_name, True)
    if not _searchable(state, engine.dim):
        raise Refusal(409, "model_mismatch", f"the bound faces are {state.dim}-d; the engine makes {engine.dim}-d")
    [best] = await ctx.registry.search(state, vector, 1, 1)
    if for_model(row.model or engine.model_name).score(best.cosine) < ctx.settings.face_login_min_score:
        raise Refusal(422, "no_match", "no account's face matches")
    return int(best.target_id)


# --- face datasets -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Enrolment:
    collection: str
    owner_id: int
    target_id: str
    image_key: str
    image: Any
    enrolment_id: int


async def enroll_image(
    ctx: FaceContext, repo: FaceRepository, enrolment: Enrolment, after_commit: AfterCommit
) -> dict[str, Any]:
    def answer(feature_id: int, duplicate: bool) -> dict[str, Any]:
        return {
            "collection": enrolment.collection,
            "target_id": enrolment.target_id,
            "feature_id": feature_id,
            "duplicate": duplicate,
        }

    if done := await ctx.read(lambda r: r.feature_by_enrolment(enrolment.enrolment_id)):
        return answer(done[0], True)  # a retry whose first answer was lost
    engine = ctx.recognizer.require()
    vector = await _vector(ctx, enrolment.image)

    await repo.claim_ownerless(DATASET, enrolment.collection, enrolment.owner_id)
    await repo.ensure_collection(DATASET, enrolment.owner_id, enrolment.collection, engine.model_name, engine.dim)
    row = await repo.collection(DATASET, enrolment.owner_id, enrolment.collection, lock=True)
    assert row is not None
    if done := await repo.feature_by_enrolment(enrolment.enrolment_id):
        return answer(done[0], True)
    if (same := await repo.feature_by_image(row.id, enrolment.target_id, enrolment.image_key)) is not None:
        return answer(same, True)
    _model_refusal(row, engine.model_name, await repo.feature_count(row.id) > 0)
    held = len((await repo.feature_ids_by_target(row.id, [enrolment.target_id])).get(enrolment.target_id, []))
    limit = ctx.settings.face_max_features_per_target
    if held >= limit:
        raise Refusal(409, "quota_exceeded", f"target {enrolment.target_id!r} already holds {limit} faces")
    feature = NewFeature(enrolment.target_id, vector, enrolment.image_key, enrolment.enrolment_id)
    change = await store_features(repo, row, engine, [feature])
    ctx.publish_after(after_commit, change)
    return answer(change.added[0][0], False)
