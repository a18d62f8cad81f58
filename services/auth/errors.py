"""The auth routes' documented errors (document 003's codes)."""

from __future__ import annotations

from shared.errors import LabelhiveError


def _error(code: int, message: str, status_code: int = 400) -> type[LabelhiveError]:
    return type(
        "".join(w.capitalize() for w in message.split()),
        (LabelhiveError,),
        {"code": code, "message": message, "status_code": status_code},
    )


ExistingUsername = _error(1, "existing username")
UsernameFormat = _error(2, "username format error")
PasswordFormat = _error(3, "password format error")
WrongCredentials = _error(4, "wrong username or password")
WrongPassword = _error(4, "wrong password")
ScoreNotEnough = _error(5, "score not enough")
BalanceNotEnough = _error(5, "balance not enough")
AlreadyVip = _error(6, "already vip")
UserDoesNotExist = _error(8, "user does not exist", 404)
NoPermission19 = _error(19, "no permission")
NoEmailBound = _error(32, "no email bound")
NoBankCard = _error(37, "no bank card")
BankCardTaken = _error(38, "bank card bound to another user")
SendCodeFailed = _error(40, "send verify code failed")
EmailAlreadyBound = _error(41, "email already bound")
CodeExpired = _error(45, "email verify code expired")
WrongCode = _error(46, "wrong email verify code")
FaceUnrecognized = _error(60, "face unrecognized", 401)
FaceUnmatched = _error(61, "face unmatched")
FaceRegistered = _error(63, "face registered", 401)
NeedAdminInvite = _error(80, "need invite code of admin")
AdScoreNotEnough = _error(83, "score not enough")
AdNotFound = _error(86, "ad does not exist or is not yours")
WrongInviteCode = _error(92, "wrong invite code")
IdempotencyConflict = _error(409, "idempotency key reused for a different request", 409)
