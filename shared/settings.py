"""Settings every process reads from the environment (CONTRACT.md, "Configuration")."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES = ("auth", "dataset", "tasks", "face", "detect", "stats", "console")
DEFAULT_SERVICE_PORTS = {name: 8101 + i for i, name in enumerate(SERVICES)}


def split_urls(value: str) -> list[str]:
    """The addresses in a `LABELHIVE_<SERVICE>_URL`: one, or a service's replicas separated by commas."""
    return [url.strip().rstrip("/") for url in value.split(",") if url.strip()]


class PlatformSettings(BaseSettings):
    """What the gateway and every service share. Each service subclasses it for its own knobs."""

    model_config = SettingsConfigDict(env_prefix="LABELHIVE_", extra="ignore", populate_by_name=True)

    database_url: str = Field("", validation_alias=AliasChoices("DATABASE_URL", "LABELHIVE_DATABASE_URL"))
    redis_url: str = Field("", validation_alias=AliasChoices("REDIS_URL", "LABELHIVE_REDIS_URL"))
    data_dir: Path = Path("./var")
    # Prefixes every Redis key, so that test runs sharing one Redis server never see each other.
    redis_namespace: str = "lh"
    # Signs the identity the gateway hands to services and the calls services make to each other.
    internal_secret: str = ""
    log_level: str = "INFO"
    rate_limits: bool = True
    upload_throttle: bool = True

    auth_url: str = f"http://127.0.0.1:{DEFAULT_SERVICE_PORTS['auth']}"
    dataset_url: str = f"http://127.0.0.1:{DEFAULT_SERVICE_PORTS['dataset']}"
    tasks_url: str = f"http://127.0.0.1:{DEFAULT_SERVICE_PORTS['tasks']}"
    face_url: str = f"http://127.0.0.1:{DEFAULT_SERVICE_PORTS['face']}"
    detect_url: str = f"http://127.0.0.1:{DEFAULT_SERVICE_PORTS['detect']}"
    stats_url: str = f"http://127.0.0.1:{DEFAULT_SERVICE_PORTS['stats']}"
    console_url: str = f"http://127.0.0.1:{DEFAULT_SERVICE_PORTS['console']}"

    def service_url(self, name: str) -> str:
        """`LABELHIVE_<NAME>_URL` as set: one address, or a service's replicas separated by commas."""
        url: str = getattr(self, f"{name}_url")
        return url

    def service_urls(self, name: str) -> list[str]:
        """The addresses of a service's replicas."""
        return split_urls(self.service_url(name))
