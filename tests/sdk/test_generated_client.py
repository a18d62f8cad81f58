"""A client generated from the platform's OpenAPI document works (issue 14): openapi-python-client builds
a typed SDK from the gateway's merged /openapi.json, the one document a client sees, without dropping an
endpoint, and its calls through the gateway come back parsed into the declared models, envelope and data.

The merged document titles each component with its service-prefixed name (gateway/docs.py), so the
models two services share (`Empty`, the envelopes around it) are classes of their own: `AuthEmpty`,
`TasksEmpty`. A response the generator cannot type is left out of the client, the endpoint kept; only
a file download (an image, a video, a zip) may be.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from shared.launcher import Platform
from tests.conftest import Mailbox, random_ip, unique
from tests.tasks_api.conftest import PASSWORD

GENERATOR = [sys.executable, "-m", "openapi_python_client"]
# No post-generation hooks: the generator would run ruff over the generated code.
CONFIG = "post_hooks: []\n"
PACKAGE = "labelhive_sdk"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# The generator's report of a part it left out: a warning about one operation, or a schema it could not
# parse ("Unable to parse schema ..."); a warning's detail is its next non-empty line.
OPERATION_WARNING = re.compile(r"^WARNING parsing \S+ \S+ within .*$", re.M)
OMITTED_DOWNLOAD = re.compile(r"\(Unsupported content_type (?P<types>[^)]*)\), response will be omitted")


def _left_out(report: str) -> list[str]:
    """What the generator's report says it left out, but for the responses of file downloads."""
    left_out = [line for line in report.splitlines() if line.startswith("Unable to")]
    for warning in OPERATION_WARNING.finditer(report):
        detail = next((line for line in report[warning.end() :].splitlines() if line.strip()), "")
        download = OMITTED_DOWNLOAD.search(detail)
        types = download["types"].split(", ") if download else []
        if not warning[0].endswith(".") or not types or any("json" in t for t in types):
            left_out.append(f"{warning[0]} {detail}")
    return left_out


def test_the_report_reader_tells_a_dropped_endpoint_from_an_omitted_download() -> None:
    download = (
        "WARNING parsing GET /picbed/{name} within dataset_image_and_media_bed_003.\n\n"
        "Cannot parse response for status code 200 (Unsupported content_type image/jpeg, image/png), "
        "response will be omitted from generated client\n"
    )
    assert _left_out(download) == []
    json_answer = download.replace("image/jpeg, image/png", "application/json")
    unknown_model = download.replace("Unsupported content_type image/jpeg, image/png", "Could not find reference")
    dropped = (
        "WARNING parsing POST /task/{task_id} within tasks_tasks_003. Endpoint will not be generated.\n\n"
        "Could not find reference\n"
    )
    duplicate = "Unable to parse schema /components/schemas/tasks.Empty\nAttempted to generate duplicate models\n"
    for report in (json_answer, unknown_model, dropped, duplicate):
        assert len(_left_out(report)) == 1, report


def _generate(spec: dict, into: Path) -> Path:
    (into / f"{PACKAGE}.json").write_text(json.dumps(spec))
    (into / f"{PACKAGE}.yaml").write_text(CONFIG)
    done = subprocess.run(
        [
            *GENERATOR,
            "generate",
            "--path",
            str(into / f"{PACKAGE}.json"),
            "--config",
            str(into / f"{PACKAGE}.yaml"),
            "--meta",
            "none",
            "--output-path",
            str(into / PACKAGE),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    assert not _left_out(report), "the generator left out parts of the merged document:\n" + "\n".join(
        _left_out(report)
    )
    return into / PACKAGE


def _operations(spec: dict) -> int:
    return sum(method in METHODS for operations in spec["paths"].values() for method in operations)


@pytest.fixture(scope="module")
def sdk(merged_openapi: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """labelhive_sdk, generated from the gateway's /openapi.json and importable."""
    spec = merged_openapi
    into = tmp_path_factory.mktemp("sdk")
    package = _generate(spec, into)
    # One module per operation: none was dropped, whatever the report said.
    endpoints = [m for m in (package / "api").glob("*/*.py") if m.name != "__init__.py"]
    assert len(endpoints) == _operations(spec), (len(endpoints), _operations(spec))
    sys.path.insert(0, str(into))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(into))
        for name in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def _module(sdk: ModuleType, module: str) -> ModuleType:
    return importlib.import_module(f"{sdk.__name__}.{module}")


async def test_generated_client_registers_logs_in_and_lists_tasks(
    platform: Platform, mailbox: Mailbox, sdk: ModuleType
) -> None:
    models = _module(sdk, "models")
    # The models auth and tasks share are a class each: the tasks routes' answers are not dropped.
    assert models.AuthEnvelope003Empty is not models.TasksEnvelope003Empty
    client = sdk.Client(base_url=platform.gateway_url, headers={"X-Forwarded-For": random_ip()})
    users = "api.auth_users_003."

    email = f"{unique('sdk')}@example.com"
    sent = await _module(sdk, users + "get_verify_code_user_get_verifycode_post").asyncio(
        client=client, body=models.AuthEmailBody(email=email)
    )
    assert isinstance(sent, models.AuthEnvelope003Empty) and sent.code == 0, sent
    name = unique("sdk_")
    registered = await _module(sdk, users + "register_user_register_post").asyncio(
        client=client,
        body=models.AuthRegister003(
            user_name=name,
            password=PASSWORD,
            user_type=models.AuthRegister003UserType.DEMAND,
            email=email,
            verifycode=await mailbox.code_for(email),
        ),
    )
    assert isinstance(registered, models.AuthEnvelope003Registered003), registered
    assert registered.data.user_name == name and registered.data.invite_code

    logged_in = await _module(sdk, users + "login_user_login_post").asyncio(
        client=client, body=models.AuthLogin003(user_name=name, password=PASSWORD)
    )
    assert isinstance(logged_in, models.AuthEnvelope003LoggedIn003), logged_in
    assert (logged_in.data.user_id, logged_in.data.user_type) == (registered.data.user_id, "demand")

    # The session cookie the login set travels with the client's next calls, to every service.
    profile = await _module(sdk, users + "user_info_user_userinfo_user_id_get").asyncio(
        client=client, user_id=registered.data.user_id
    )
    assert isinstance(profile, models.AuthEnvelope003UnionOwnProfilePublicProfile), profile
    assert isinstance(profile.data, models.AuthOwnProfile), profile.data
    assert (profile.data.email, profile.data.score) == (email, 0)

    # 000's envelope: its `requestID` is the model's request_id.
    requester = unique("sdk000_")
    created = await _module(sdk, "api.auth_users_000.create_user_api_users_post").asyncio(
        client=client, body=models.AuthRegister000(user_name=requester, password=PASSWORD)
    )
    assert isinstance(created, models.AuthUserAnswer000), created
    assert (created.err_no, created.user_name) == ("0", requester) and created.request_id

    tasks = "api.tasks_tasks_003."
    mine = await _module(sdk, tasks + "get_my_tasks_task_get_my_tasks_get").asyncio(client=client)
    assert isinstance(mine, models.TasksEnvelope003ListTaskEntry) and mine.data == [], mine
    missions = await _module(sdk, "api.tasks_missions_001.task_list_task_list_get").asyncio(client=client)
    assert isinstance(missions, models.TasksEnvelope001UnionListExpertMissionListManagerMission), missions
    assert missions.response == []

    # A refusal comes back as the route's declared error envelope.
    refused = await _module(sdk, tasks + "get_all_tasks_task_get_all_tasks_get").asyncio(client=client)
    assert isinstance(refused, models.TasksError003) and refused.code != 0, refused

    await client.get_async_httpx_client().aclose()
