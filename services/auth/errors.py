"""The auth routes' documented errors (document 003's codes)."""

from __future__ import annotations

from shared.errors import documented_error

ExistingUsername = documented_error(1, "existing username")
UsernameFormat = documented_error(2, "username format error")
PasswordFormat = documented_error(3, "password format error")
WrongCredentials = documented_error(4, "wrong username or password")
WrongPassword = documented_error(4, "wrong password")
ScoreNotEnough = documented_error(5, "score not enough")
BalanceNotEnough = documented_error(5, "balance not enough")
AlreadyVip = documented_error(6, "already vip")
UserDoesNotExist = documented_error(8, "user does not exist", 404)
NoPermission19 = documented_error(19, "no permission")
NoEmailBound = documented_error(32, "no email bound")
NoBankCard = documented_error(37, "no bank card")
BankCardTaken = documented_error(38, "bank card bound to another user")
SendCodeFailed = documented_error(40, "send verify code failed")
EmailAlreadyBound = documented_error(41, "email already bound")
CodeExpired = documented_error(45, "email verify code expired")
WrongCode = documented_error(46, "wrong email verify code")
FaceUnrecognized = documented_error(60, "face unrecognized", 401)
FaceUnmatched = documented_error(61, "face unmatched")
FaceRegistered = documented_error(63, "face registered", 401)
NeedAdminInvite = documented_error(80, "need invite code of admin")
AdScoreNotEnough = documented_error(83, "score not enough")
AdNotFound = documented_error(86, "ad does not exist or is not yours")
WrongInviteCode = documented_error(92, "wrong invite code")
IdempotencyConflict = documented_error(409, "idempotency key reused for a different request", 409)
