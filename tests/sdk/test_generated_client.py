"""A client generated from the platform's OpenAPI documents works (issue 14): openapi-python-client
builds a typed SDK from auth's and tasks' /openapi.json, and its calls through the gateway come back
parsed into the declared models, envelope and data.

Each client is generated from its service's own document. The gateway's merged /openapi.json keeps every
service's component titles, and the generator names its classes after titles, so the models two
services share (the envelopes around `Empty` or `str`) would collide there.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from shared.launcher import Platform
from shared.sessions import SESSION_COOKIE
from tests.conftest import Mailbox, random_ip, unique
from tests.tasks_api.conftest import PASSWORD

GENERATOR = [sys.executable, "-m", "openapi_python_client"]
# No post-generation hooks: the generator would run ruff over the generated code.
CONFIG = "post_hooks: []\n"


def _generate(spec: dict, package: str, into: Path) -> None:
    (into / f"{package}.json").write_text(json.dumps(spec))
    (into / f"{package}.yaml").write_text(CONFIG)
    done = subprocess.run(
        [
            *GENERATOR,
            "generate",
            "--path",
            str(into / f"{package}.json"),
            "--config",
            str(into / f"{package}.yaml"),
            "--meta",
            "none",
            "--output-path",
            str(into / package),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Unable to" not in done.stdout, f"the generator dropped parts of {package}'s document:\n{done.stdout}"


@pytest.fixture(scope="module")
def sdk(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ModuleType]]:
    """labelhive_auth and labelhive_tasks, generated and importable."""
    into = tmp_path_factory.mktemp("sdk")
    packages = {}
    for service in ("auth", "tasks"):
        spec = httpx.get(f"{platform.service_url(service)}/openapi.json", timeout=30).json()
        _generate(spec, f"labelhive_{service}", into)
        packages[service] = f"labelhive_{service}"
    sys.path.insert(0, str(into))
    try:
        yield {service: importlib.import_module(package) for service, package in packages.items()}
    finally:
        sys.path.remove(str(into))
        for name in [m for m in sys.modules if m.split(".")[0] in packages.values()]:
            del sys.modules[name]


def _module(sdk: ModuleType, module: str) -> ModuleType:
    return importlib.import_module(f"{sdk.__name__}.{module}")


async def test_generated_client_registers_logs_in_and_lists_tasks(
    platform: Platform, mailbox: Mailbox, sdk: dict[str, ModuleType]
) -> None:
    auth, tasks = sdk["auth"], sdk["tasks"]
    models, task_models = _module(auth, "models"), _module(tasks, "models")
    client = auth.Client(base_url=platform.gateway_url, headers={"X-Forwarded-For": random_ip()})
    users = "api.users_003."

    email = f"{unique('sdk')}@example.com"
    sent = await _module(auth, users + "get_verify_code_user_get_verifycode_post").asyncio(
        client=client, body=models.EmailBody(email=email)
    )
    assert isinstance(sent, models.Envelope003Empty) and sent.code == 0, sent
    name = unique("sdk_")
    registered = await _module(auth, users + "register_user_register_post").asyncio(
        client=client,
        body=models.Register003(
            user_name=name,
            password=PASSWORD,
            user_type=models.Register003UserType.DEMAND,
            email=email,
            verifycode=await mailbox.code_for(email),
        ),
    )
    assert isinstance(registered, models.Envelope003Registered003), registered
    assert registered.data.user_name == name and registered.data.invite_code

    logged_in = await _module(auth, users + "login_user_login_post").asyncio(
        client=client, body=models.Login003(user_name=name, password=PASSWORD)
    )
    assert isinstance(logged_in, models.Envelope003LoggedIn003), logged_in
    assert (logged_in.data.user_id, logged_in.data.user_type) == (registered.data.user_id, "demand")

    # The session cookie the login set travels with the client's next calls.
    profile = await _module(auth, users + "user_info_user_userinfo_user_id_get").asyncio(
        client=client, user_id=registered.data.user_id
    )
    assert isinstance(profile, models.Envelope003UnionOwnProfilePublicProfile), profile
    assert isinstance(profile.data, models.OwnProfile), profile.data
    assert (profile.data.email, profile.data.score) == (email, 0)

    # 000's envelope: its `requestID` is the model's request_id.
    requester = unique("sdk000_")
    created = await _module(auth, "api.users_000.create_user_api_users_post").asyncio(
        client=client, body=models.Register000(user_name=requester, password=PASSWORD)
    )
    assert isinstance(created, models.UserAnswer000), created
    assert (created.err_no, created.user_name) == ("0", requester) and created.request_id

    session = client.get_async_httpx_client().cookies[SESSION_COOKIE]
    tasks_client = tasks.Client(
        base_url=platform.gateway_url, headers={"X-Forwarded-For": random_ip()}, cookies={SESSION_COOKIE: session}
    )
    mine = await _module(tasks, "api.tasks_003.get_my_tasks_task_get_my_tasks_get").asyncio(client=tasks_client)
    assert isinstance(mine, task_models.Envelope003ListTaskEntry) and mine.data == [], mine
    missions = await _module(tasks, "api.missions_001.task_list_task_list_get").asyncio(client=tasks_client)
    assert isinstance(missions, task_models.Envelope001UnionlistExpertMissionListManagerMission), missions
    assert missions.response == []

    # A refusal comes back as the route's declared error envelope.
    refused = await _module(tasks, "api.tasks_003.get_all_tasks_task_get_all_tasks_get").asyncio(client=tasks_client)
    assert isinstance(refused, task_models.Error003) and refused.code != 0, refused

    await asyncio.gather(client.get_async_httpx_client().aclose(), tasks_client.get_async_httpx_client().aclose())
