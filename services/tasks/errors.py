"""The task and review routes' documented errors (document 003's codes, messages and statuses)."""

from __future__ import annotations

from shared.errors import LabelhiveError, NoPermission, documented_error

TimeOrRewardFormat = documented_error(9, "time limit or reward score format error")
ScoreNotEnough = documented_error(10, "score not enough")
TaskDoesNotExist = documented_error(11, "task does not exist", 404)
NoPermissionToModify = documented_error(12, "no permission to modify")
NoPermissionToDelete = documented_error(12, "no permission to delete")
NoTaskOfAdmin = documented_error(12, "no task of admin")
TaskNameFormat = documented_error(13, "task name format error")
QuestionDoesNotExist = documented_error(13, "question does not exist", 404)
TaskNotCreated = documented_error(14, "task not created")  # 400 on distribute; 404 elsewhere (see not_created)
NoDistributePermission = documented_error(15, "no distribute permission")
NoAccessPermission = documented_error(16, "no access permission")
NoPermissions = documented_error(16, "no permissions")
NoPermissionToAccept = documented_error(18, "no permission to accept")
FieldError = documented_error(20, "field error")
TagUserNotEnough = documented_error(21, "tag user not enough")
DeleteDistributed = documented_error(22, "task has been distributed")
TaskDistributed = documented_error(23, "task has been distributed")
TaskNotDistributed = documented_error(24, "task not distributed")
ReviewNotFinish = documented_error(25, "review not finish")
AcceptLimit = documented_error(30, "accept limit")
DistributionCompleted = documented_error(31, "distribution completed")
RepeatAccept = documented_error(32, "repeat accept")
RefusedTask = documented_error(33, "refused task")
TaskNotExists = documented_error(33, "task not exists")
TaskNotChecked = documented_error(34, "task not checked")
NotThisTasksTagger = documented_error(34, "user is not this task's tagger", 404)
UserNotChecked = documented_error(35, "user not checked")
ReportRecordNotFound = documented_error(35, "report record not found", 404)
NoResubmit = documented_error(50, "no resubmit")
Recheck = documented_error(51, "recheck")
AlreadyStart = documented_error(59, "already start")
MissingFieldName = documented_error(71, "missing field name")
InvalidTaskType = documented_error(72, "invalid task type")
WrongFilename = documented_error(73, "wrong filename")
WrongTagName = documented_error(74, "wrong tag name")


def not_created(status_code: int = 404) -> LabelhiveError:
    """`task not created`: 003 answers it with 400 on distribute and 404 on the other routes."""
    return TaskNotCreated(status_code=status_code)


class NotAnExpert(NoPermission):
    """001's refusal on the experts' routes: 非专家用户 where the managers' say 非管理员用户."""

    def __init__(self) -> None:
        super().__init__("非专家用户")
