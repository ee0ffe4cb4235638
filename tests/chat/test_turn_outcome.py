"""After a turn the status line says how it went: 'Ready. ...' when it worked, the one-sentence problem (⚠) when
its tool failed or the reply is an error, 'Stopped.' when stopped. Through gradio_client and the real router
over the tiny checkpoints.
"""

from __future__ import annotations

import pytest

from tests.fakes import CHAT, STATUS, launch, sample_image, text

NO_IMAGE = "⚠ There is no image yet; upload one first."


@pytest.fixture(scope="module")
def served(assistant):
    from chat.app import create_app

    app = create_app(assistant)
    url = launch(app)
    yield url, app
    app.close()


@pytest.fixture
def with_image(client, tmp_path):
    from gradio_client import handle_file

    client.predict([handle_file(str(sample_image(tmp_path / "street.png")))], api_name="/upload")
    return client


def reply(out) -> str:
    return text(out[CHAT][-1])


@pytest.mark.parametrize("endpoint, inputs", [
    ("/edit", ("make it snowy",)),
    ("/remove", ("the dog",)),
    ("/som", ()),
    ("/score", ("cat | dog", "clip")),
])
def test_a_button_with_no_image_says_so_in_the_status_line(client, endpoint, inputs):
    out = client.predict(*inputs, api_name=endpoint)
    assert out[STATUS] == NO_IMAGE
    assert reply(out) == "Error: " + NO_IMAGE.removeprefix("⚠ ")  # and in the chat, as before


@pytest.mark.parametrize("command, problem", [
    ("/remove", "Say what to remove (e.g. 'remove the dog'), or click on it in img1 first."),
    ("/mark", "Image img1 has no markers; click on the image to place one first."),
    ("/edit --steps 1000 make it snowy", "Invalid steps for edit: input should be less than or equal to 150."),
    ("/generate a cat --seed -5", "Invalid seed for generate: input should be greater than or equal to 0."),
    ("/caption img9", "There is no image 'img9' in this session (images: img1)."),
])
def test_a_failed_command_says_why_in_the_status_line(with_image, command, problem):
    out = with_image.predict(command, api_name="/ask")
    assert out[STATUS] == f"⚠ {problem}" and reply(out) == f"Error: {problem}"
    ok = with_image.predict("/caption", api_name="/ask")  # the next turn that works is 'Ready' again
    assert ok[STATUS].startswith("Ready. Active image img1.v1") and not reply(ok).startswith("Error")


def test_regenerate_of_a_failed_command_fails_the_same_way(with_image):
    with_image.predict("/mark", api_name="/ask")
    out = with_image.predict(api_name="/regenerate")
    assert out[STATUS] == "⚠ Image img1 has no markers; click on the image to place one first."
