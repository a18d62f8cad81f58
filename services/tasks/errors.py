"""The task and review routes' documented errors (document 003's codes, messages and statuses)."""

from __future__ import annotations

from shared.errors import LabelhiveError


def _error(code: int, message: str, status_code: int = 400) -> type[LabelhiveError]:
    return type(
        "".join(w.capitalize() for w in message.replace("'", "").split()),
        (LabelhiveError,),
        {"code": code, "message": message, "status_code": status_code},
    )


TimeOrRewardFormat = _error(9, "time limit or reward score format error")
ScoreNotEnough = _error(10, "score not enough")
TaskDoesNotExist = _error(11, "task does not exist", 404)
NoPermissionToModify = _error(12, "no permission to modify")
NoPermissionToDelete = _error(12, "no permission to delete")
NoTaskOfAdmin = _error(12, "no task of admin")
TaskNameFormat = _error(13, "task name format error")
QuestionDoesNotExist = _error(13, "question does not exist", 404)
TaskNotCreated = _error(14, "task not created")  # 400 on distribute; 404 elsewhere (see not_created)
NoDistributePermission = _error(15, "no distribute permission")
NoAccessPermission = _error(16, "no access permission")
NoPermissions = _error(16, "no permissions")
NoPermissionToAccept = _error(18, "no permission to accept")
FieldError = _error(20, "field error")
TagUserNotEnough = _error(21, "tag user not enough")
DeleteDistributed = _error(22, "task has been distributed")
TaskDistributed = _error(23, "task has been distributed")
TaskNotDistributed = _error(24, "task not distributed")
ReviewNotFinish = _error(25, "review not finish")
AcceptLimit = _error(30, "accept limit")
DistributionCompleted = _error(31, "distribution completed")
RepeatAccept = _error(32, "repeat accept")
RefusedTask = _error(33, "refused task")
TaskNotExists = _error(33, "task not exists")
TaskNotChecked = _error(34, "task not checked")
NotThisTasksTagger = _error(34, "user is not this task's tagger", 404)
UserNotChecked = _error(35, "user not checked")
ReportRecordNotFound = _error(35, "report record not found", 404)
NoResubmit = _error(50, "no resubmit")
Recheck = _error(51, "recheck")
AlreadyStart = _error(59, "already start")
MissingFieldName = _error(71, "missing field name")
InvalidTaskType = _error(72, "invalid task type")
WrongFilename = _error(73, "wrong filename")
WrongTagName = _error(74, "wrong tag name")


def not_created(status_code: int = 404) -> LabelhiveError:
    """`task not created`: 003 answers it with 400 on distribute and 404 on the other routes."""
    return TaskNotCreated(status_code=status_code)
