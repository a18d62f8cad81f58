"""Question texts from the dataset service (services/tasks/labeling.py, DatasetClient): fetched once and
then read from Redis, and a text that is not the publisher's, or is gone, reads as empty."""

from __future__ import annotations

from services.tasks import labeling
from tests.tasks.conftest import World


async def test_question_texts_come_from_the_dataset_service_once(world: World, dataset):
    fake, client = dataset
    publisher = world.requester()
    own = fake.add_text(101, "a cat\non a mat", owner_id=publisher.user_id)
    foreign = fake.add_text(102, "someone else's", owner_id=publisher.user_id + 1)
    task = await world.created(publisher, q_num=3)  # tags 101, 102 and 103 (which the dataset lacks)
    questions = await world.repo.questions(task.id)

    texts = await labeling.texts_for(client, task, questions)
    again = await labeling.texts_for(client, task, questions)

    assert texts == again == {own: "a cat\non a mat", foreign: "", "103": ""}
    fetched = sorted(c.path for c in fake.calls)  # a text found is cached; one missing is asked again
    assert fetched == ["/internal/texts/101", "/internal/texts/102", "/internal/texts/103", "/internal/texts/103"]
