"""--image PATH|URL|VAR, in a real shell against the simulator."""

from __future__ import annotations

import base64

import pytest
from IPython.core.error import UsageError

from aihubmix_magic import last_response
from aihubmix_magic.session import state as _session

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def png_file(tmp_path):
    image = pytest.importorskip("PIL.Image")
    path = tmp_path / "red dot.png"
    image.new("RGB", (4, 4), "red").save(path)
    return path


def decoded(url: str) -> bytes:
    header, _, data = url.partition(",")
    assert header in ("data:image/png;base64", "data:image/jpeg;base64")
    return base64.b64decode(data)


def test_file_variable_figure_and_url_on_chat(ip, sim, png_file):
    image = pytest.importorskip("PIL.Image")
    figure_module = pytest.importorskip("matplotlib.figure")
    figure = figure_module.Figure(figsize=(1, 1))
    figure.add_subplot().plot([0, 1], [1, 0])
    ip.user_ns.update(photo=image.new("RGBA", (3, 2), "blue"), fig=figure)
    line = f'--image "{png_file}" --image photo --image fig --image https://example.com/cat.jpg'
    ip.run_cell_magic("aihubmix", line, "What do you see?")
    content = sim.requests[-1].body["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "What do you see?"}
    assert [part["type"] for part in content[1:]] == ["image_url"] * 4
    urls = [part["image_url"]["url"] for part in content[1:]]
    assert decoded(urls[0]) == png_file.read_bytes()
    assert all(decoded(url).startswith(PNG_SIGNATURE) for url in urls[1:3])
    assert urls[3] == "https://example.com/cat.jpg"
    assert "I see 4 image(s)." in last_response().text


def test_responses_endpoint_uses_input_image_parts(ip, sim, png_file):
    ip.run_cell_magic("aihubmix", f'-e responses --image "{png_file}"', "Describe it.")
    message = sim.requests[-1].body["input"][-1]
    assert message["role"] == "user"
    assert message["content"][0] == {"type": "input_text", "text": "Describe it."}
    assert message["content"][1]["type"] == "input_image"
    assert decoded(message["content"][1]["image_url"]) == png_file.read_bytes()
    assert "I see 1 image(s)." in last_response().text


def test_images_stay_in_a_thread(ip, sim, png_file):
    _session.current().threads.clear()
    ip.run_cell_magic("aihubmix", f'-e responses --image "{png_file}"', "Describe it.")
    ip.run_cell_magic("aihubmix", "-c", "And the colour?")  # continued on chat: parts converted
    messages = sim.requests[-1].body["messages"]
    assert messages[0]["content"][1]["type"] == "image_url"
    assert messages[-1] == {"role": "user", "content": "And the colour?"}
    ip.display_pub.messages.clear()
    ip.run_line_magic("aihubmix", "history")
    assert "*(1 image)*" in ip.display_pub.outputs()[-1]["text/markdown"]


@pytest.mark.parametrize(("source", "words"), [
    ("no_such_variable", "no variable and no file named 'no_such_variable'"),
    ("/no/such/file.png", "no such file"),
    ("number", "number is of type int, not an image"),
    ("notes_path", "not a PNG, JPEG, GIF, WebP or BMP image"),
])
def test_bad_images_send_nothing(ip, sim, tmp_path, source, words):
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    ip.user_ns.update(number=3, notes_path=str(notes))
    ip.user_ns.pop("no_such_variable", None)
    before = sim.request_count
    with pytest.raises(UsageError) as info:
        ip.run_cell_magic("aihubmix", f"--image {source}", "hi")
    assert words in str(info.value)
    assert sim.request_count == before
