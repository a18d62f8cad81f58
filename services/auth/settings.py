from __future__ import annotations

from shared.settings import PlatformSettings


class AuthSettings(PlatformSettings):
    admin_user: str = ""
    admin_password: str = ""
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_sender: str = "Labelhive <no-reply@labelhive.local>"
    email_code_ttl_seconds: int = 600
    email_code_max_attempts: int = 5
    invite_reward_points: int = 10
