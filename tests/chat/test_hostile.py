"""Hostile input through the session API (Handlers, Router.respond) and through gradio_client.

Every case asserts: (a) the person gets one clear sentence (a UserError, an "Error: ..." reply, or a status
starting with "⚠"), never traceback text; an accepted input gets a normal answer; (b) a refused input leaves
the session as it was, in memory and on disk; (c) the server still answers afterwards.
"""

from __future__ import annotations

import io
import json
import re
import struct
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image

from chat.config import LimitsConfig
from chat.errors import UserError
from tests.fakes import CHAT, IMAGE, STATUS, THUMBS, ScriptedRouter, launch, sample_image, sid_of, text

LIMITS = dict(max_upload_bytes=300_000, max_pixels=100_000, max_image_pixels_hard=4_000_000,
              max_images_per_session=3, max_message_chars=2000, max_labels=5)
LEAK = re.compile(r"Traceback|\b\w+(?:Error|Exception)\b|/(?:tmp|work|home|root|usr|var|opt)/|site-packages|\.py\b"
                  r"|line \d+")  # traceback text, exception class names, paths on the server


# -- inputs ---------------------------------------------------------------------------------------
def enc(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.getvalue()


def png_header(w: int, h: int) -> bytes:
    """A valid PNG claiming w x h pixels with almost no data (nothing of that size is allocated)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b""))


def noise() -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8))


def frames(fmt: str) -> bytes:
    red, green = Image.new("RGB", (20, 10), (255, 0, 0)), Image.new("RGB", (20, 10), (0, 255, 0))
    return enc(red, fmt, save_all=True, append_images=[green, green])


def exif_rotated() -> bytes:
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    image.paste((0, 0, 255), (20, 0, 40, 20))  # left half red, right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise: red on top
    return enc(image, "JPEG", exif=exif, quality=95)


BAD_FILES = {  # every one is named upload.png
    "zero-byte": (lambda: b"", "empty (0 bytes)"),
    "truncated png": (lambda: enc(noise())[:3000], "truncated or corrupt"),
    "truncated jpeg": (lambda: enc(noise(), "JPEG")[:2000], "truncated or corrupt"),
    "text named .png": (lambda: b"hello, I am not an image at all" * 3, "not an image"),
    "pdf named .png": (lambda: b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n", "not an image"),
    "svg": (lambda: b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "SVG/HTML"),
    "svg with a BOM": (lambda: "\ufeff<svg xmlns='http://www.w3.org/2000/svg'/>".encode(), "SVG/HTML"),
    "html": (lambda: b"<!DOCTYPE html><html><script>alert(1)</script></html>", "SVG/HTML"),
    "ico": (lambda: enc(Image.new("RGB", (16, 16)), "ICO"), "is an ICO file"),
    "50000x50000 header": (lambda: png_header(50000, 50000), "too large"),
    "0x10 header": (lambda: png_header(0, 10), "not an image"),
    "over the hard pixel limit": (lambda: png_header(2100, 2000), "4-megapixel limit"),
    "small-file bomb": (lambda: enc(Image.new("1", (2100, 2100))), "4-megapixel limit"),
    "over the byte limit": (lambda: enc(noise().resize((320, 320))) * 3, "the limit is 293 KB"),
}
GOOD_FILES = {  # accepted: (bytes, check of the stored RGB image)
    "1x1": (lambda: enc(Image.new("RGB", (1, 1), (10, 20, 30))), lambda im: im.getpixel((0, 0)) == (10, 20, 30)),
    "cmyk jpeg": (lambda: enc(Image.new("CMYK", (20, 10), (0, 255, 255, 0)), "JPEG"),
                  lambda im: im.getpixel((5, 5))[0] > 200 > 60 > im.getpixel((5, 5))[1]),
    "16-bit grey": (lambda: enc(Image.new("I;16", (20, 10), 32896)),
                    lambda im: all(abs(c - 128) <= 1 for c in im.getpixel((3, 3)))),
    "palette": (lambda: enc(Image.new("RGB", (20, 10), (0, 0, 255)).convert("P")),
                lambda im: im.getpixel((3, 3)) == (0, 0, 255)),
    "alpha": (lambda: enc(Image.new("RGBA", (20, 10), (255, 0, 0, 0))), lambda im: im.getpixel((3, 3)) == (255,) * 3),
    "animated gif": (lambda: frames("GIF"), lambda im: im.getpixel((3, 3))[0] > 200),
    "animated png": (lambda: frames("PNG"), lambda im: im.getpixel((3, 3)) == (255, 0, 0)),
    "animated webp": (lambda: frames("WEBP"), lambda im: im.getpixel((3, 3))[0] > 200),
    "exif orientation": (exif_rotated, lambda im: im.size == (20, 40) and im.getpixel((10, 5))[0] > 200
                         and im.getpixel((10, 35))[2] > 200),
    "big but allowed": (lambda: enc(Image.new("RGB", (400, 300), (0, 128, 0))),
                        lambda im: im.width * im.height <= 100_000 and im.size[0] / im.size[1] == pytest.approx(4 / 3, 0.01)),
}


# -- checks ---------------------------------------------------------------------------------------
def sentence(message: str) -> str:
    """One clear sentence: one line, ends like a sentence, no second sentence, no traceback, class or path."""
    message = message.removeprefix("⚠").strip().removeprefix("Error:").strip()
    assert message and "\n" not in message and len(message) < 300 and message[-1] in ".?!", message
    assert not LEAK.search(message) and not re.search(r"[.!?] [A-Z]", message), message
    return message


def state(store, sid: str):
    """The session in memory and on disk."""
    disk = json.loads((store.root / "sessions" / sid / "session.json").read_bytes())
    return store.get(sid).model_dump(mode="json"), disk


def write(tmp_path, data: bytes, name: str = "upload.png") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small(tiny_config, tmp_path_factory):
    """An assistant with small limits (its own data folder), so limit cases are fast."""
    from chat.assistant import Assistant

    return Assistant(tiny_config.model_copy(update={"limits": LimitsConfig(**LIMITS),
                                                    "data_dir": str(tmp_path_factory.mktemp("hostile"))}))


@pytest.fixture(scope="module")
def h(small):
    from chat.ui.handlers import Handlers

    return Handlers(small, router=ScriptedRouter(delay=0))


@pytest.fixture
def sid(h, tmp_path):
    return h.upload(None, [str(sample_image(tmp_path / "photo.png"))]).session_id


def alive(h, sid):
    view = list(h.turn(sid, "still there?"))[-1]
    assert view.chat[-1]["content"].startswith("You asked: still there?")


def refused(h, sid, call, phrase):
    before = state(h.store, sid)
    with pytest.raises(UserError) as err:
        out = call(h, sid)
        if not hasattr(out, "session_id"):
            list(out)  # a streamed handler
    assert phrase in sentence(str(err.value)), str(err.value)
    assert state(h.store, sid) == before
    alive(h, sid)


# -- session API: files ---------------------------------------------------------------------------
@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_is_refused(h, sid, tmp_path, case):
    make, phrase = BAD_FILES[case]
    path = write(tmp_path, make())
    refused(h, sid, lambda h, sid: h.upload(sid, [path]), phrase)


@pytest.mark.parametrize("case", list(GOOD_FILES))
def test_unusual_file_is_read(h, sid, tmp_path, case):
    make, check = GOOD_FILES[case]
    before = h.store.get(sid).model_dump()
    view = h.upload(sid, [write(tmp_path, make())])
    assert view.status.startswith("Added img2.") and not LEAK.search(view.status)
    session = h.store.get(sid)
    assert check(session.pixels("img2")), session.pixels("img2").size
    assert session.images["img1"].model_dump() == before["images"]["img1"] and session.messages == []
    alive(h, sid)


UPLOADS = {  # (files, phrase); files are written under tmp_path; an all-or-nothing upload adds none of them
    "no files": (lambda tmp: [], "Choose one or more image files"),
    "missing file": (lambda tmp: [str(tmp / "gone.png")], "gone.png could not be read"),
    "a folder": (lambda tmp: [str(tmp)], "could not be read"),
    "no path": (lambda tmp: [{"path": None}], "could not be read"),
    "a bad file after a good one": (lambda tmp: [str(sample_image(tmp / "ok.png")), write(tmp, b"")], "empty"),
    "more images than allowed": (lambda tmp: [str(sample_image(tmp / f"{i}.png")) for i in range(3)],
                                 "3 more do not fit"),
}


@pytest.mark.parametrize("case", list(UPLOADS))
def test_bad_upload_adds_nothing(h, sid, tmp_path, case):
    files, phrase = UPLOADS[case]
    refused(h, sid, lambda h, sid: h.upload(sid, files(tmp_path)), phrase)


def test_text_with_a_bad_file_answers_nothing(h, sid, tmp_path):
    path = write(tmp_path, b"<html></html>")
    refused(h, sid, lambda h, sid: h.chat(sid, {"text": "what is this?", "files": [path]}), "SVG/HTML")


# -- session API: clicks, references, messages, labels, options ----------------------------------
ACTIONS = {
    "click outside the image": (lambda h, s: h.click(s, [5000, 10]), "outside the image"),
    "click left of the image": (lambda h, s: h.click(s, [-3, 10]), "outside the image"),
    "click at NaN": (lambda h, s: h.click(s, [float("nan"), 10]), "outside the image"),
    "click at words": (lambda h, s: h.click(s, ["left", "top"]), "did not land on the image"),
    "click with no position": (lambda h, s: h.click(s, None), "did not land on the image"),
    "point outside the image": (lambda h, s: h.add_point(s, 5000, 10), "outside the image"),
    "point at infinity": (lambda h, s: h.add_point(s, float("inf"), 10), "not a pixel position"),
    "unknown marker shape": (lambda h, s: h.add_point(s, 5, 5, "hexagon"), "Unknown marker shape"),
    "unknown marker colour": (lambda h, s: h.add_point(s, 5, 5, "circle", "ultraviolet"), "Unknown marker colour"),
    "select a missing image": (lambda h, s: h.select_image(s, "img99"), "no image 'img99'"),
    "select a path": (lambda h, s: h.select_image(s, "../../etc/passwd"), "no image"),
    "select nothing": (lambda h, s: h.select_image(s, " "), "Give the id of an image"),
    "select thumbnail 7": (lambda h, s: h.select_index(s, 7), "no longer there"),
    "revert a missing version": (lambda h, s: h.revert(s, "img1.v9"), "no version 9"),
    "revert version 0": (lambda h, s: h.revert(s, "img1.v0"), "no version 0"),
    "revert a missing image": (lambda h, s: h.revert(s, "img99.v1"), "no image"),
    "revert nothing": (lambda h, s: h.revert(s, ""), "Give the id of a version"),
    "revert version -1": (lambda h, s: h.revert_index(s, -1), "no longer there"),
    "resume a path": (lambda h, s: h.resume(s, "../../etc/passwd"), "no saved session"),
    "import a png": (lambda h, s: h.import_session(s, [str(sample_image(h.store.root / "x.png"))]), "not an mmchat export"),
    "empty message": (lambda h, s: h.turn(s, ""), "Type a message first"),
    "blank message": (lambda h, s: h.chat(s, {"text": " \n\t ", "files": []}), "Type a message first"),
    "100,000-character message": (lambda h, s: h.ask(s, "x" * 100_000), "the limit is 2000"),
    "empty labels": (lambda h, s: h.score(s, ""), "Type some labels"),
    "only separators": (lambda h, s: h.score(s, " | |\n| "), "Type some labels"),
    "1,000 labels": (lambda h, s: h.score(s, " | ".join(f"label {i}" for i in range(1000))), "at most 5"),
    "unknown scoring model": (lambda h, s: h.score(s, "cat | dog", "dino"), "Unknown scoring model"),
    "empty edit": (lambda h, s: h.edit(s, "  "), "Type an edit instruction"),
    "empty prompt": (lambda h, s: h.generate(s, ""), "Describe the picture"),
    "seed in words": (lambda h, s: h.generate(s, "a cat", seed="lucky"), "whole number"),
    "infinite seed": (lambda h, s: h.generate(s, "a cat", seed=float("inf")), "whole number"),
    "size in words": (lambda h, s: h.generate(s, "a cat", size="huge"), "WIDTHxHEIGHT"),
}


@pytest.mark.parametrize("case", list(ACTIONS))
def test_bad_action_is_refused(h, sid, case):
    call, phrase = ACTIONS[case]
    refused(h, sid, call, phrase)


@pytest.mark.parametrize("call", [lambda h, s: h.click(s, [5, 5]), lambda h, s: h.add_point(s, 5, 5),
                                  lambda h, s: h.undo_marker(s)], ids=["click", "point", "undo marker"])
def test_no_image_yet(h, call):
    refused(h, h.new_session().session_id, call, "upload one first")


MESSAGES = {  # accepted as typed: stored (lone surrogates, which JSON cannot store in UTF-8, as U+FFFD)
    "control characters": ("a\x00b\x1b[31m\u202ec\x07", "a\x00b\x1b[31m\u202ec\x07"),
    "Japanese": ("この画像に何が写っていますか？", "この画像に何が写っていますか？"),
    "lone surrogate": ("hi \ud800 there", "hi \ufffd there"),
    "non-text message": ({"text": 12345, "files": []}, "12345"),
}


@pytest.mark.parametrize("case", list(MESSAGES))
def test_odd_message_is_answered_and_saved(h, sid, case):
    message, stored = MESSAGES[case]
    view = list(h.chat(sid, message))[-1]
    assert view.chat[-1]["content"].startswith("You asked: ") and not view.status.startswith("⚠")
    assert state(h.store, sid)[1]["messages"][0]["content"] == stored  # on disk
    alive(h, sid)


@pytest.mark.parametrize("typed", ["<image>", "</s>", "<|im_end|>", "USER: <image>\nhi ASSISTANT: a & b"])
def test_special_tokens_typed_as_text_show_as_typed(h, sid, typed):
    """'<image>' typed in the chat showed as a broken picture, '</s>' as nothing (the chat renders HTML); the
    bubble shows the characters typed, and the session keeps them as typed."""
    from markdown_it import MarkdownIt

    view = list(h.chat(sid, typed))[-1]
    content = next(m for m in reversed(view.chat) if m["role"] == "user")["content"]
    caption = content[0] if isinstance(content, list) else content
    shown = MarkdownIt("commonmark").render(caption)
    assert "<img" not in shown and "</s>" not in shown.replace("&lt;/s&gt;", "")
    assert all(f"&lt;{tag}&gt;" in shown for tag in ("image", "/s", "|im_end|") if f"<{tag}>" in typed)
    assert state(h.store, sid)[1]["messages"][0]["content"] == typed  # stored as typed
    alive(h, sid)


def test_duplicate_labels_count_once(h, sid):
    view = list(h.score(sid, "cat | Cat | cat | dog | CAT | dog"))[-1]
    assert h.router.calls[-1][2]["labels"] == ["cat", "dog"] and [row[0] for row in view.scores] == ["cat", "dog"]
    alive(h, sid)


# -- the original of a big image ------------------------------------------------------------------
def test_big_image_gets_a_working_copy_and_keeps_its_original(h, tmp_path):
    path = tmp_path / "big.jpg"
    Image.open(sample_image(tmp_path / "big.png", size=(640, 480))).save(path, quality=90)
    data = path.read_bytes()
    view = h.upload(None, [str(path)])
    assert "scaled from 640x480" in view.status
    store, sid = h.store, view.session_id
    session = store.get(sid)
    w, hh = session.pixels("img1").size
    assert w * hh <= LIMITS["max_pixels"] and session.images["img1"].original == "img1.jpg"
    store.forget(sid)  # from disk, as after a restart
    assert store.original(store.get(sid), "img1") == data
    with zipfile.ZipFile(store.export_zip(store.get(sid))) as zf:
        assert zf.read("originals/img1.jpg") == data
    copy = store.import_zip(store.export_zip(store.get(sid)))
    assert store.original(copy, "img1") == data and copy.pixels("img1").size == (w, hh)
    small = h.upload(sid, [str(sample_image(tmp_path / "small.png"))])
    assert "scaled" not in small.status and store.original(store.get(sid), "img2") is None
    download = h.download_version(sid, "img1.v1")  # v1's download is the file as uploaded, not the working copy
    assert download.download.endswith("img1.jpg") and open(download.download, "rb").read() == data
    assert h.download_version(sid, "img2.v1").download.endswith("img2.v1.png")


# -- the real router: slash commands and their options --------------------------------------------
COMMANDS = {
    "/edit --steps -3 make it snowy": "Invalid steps for edit",
    "/generate a cat --seed 99999999999999999999": "Invalid seed for generate",
    "/sketch a cat --seed -1": "Invalid seed for sketch",
    "/edit --steps=1e999 snow": "Invalid steps for edit",
    "/edit --guidance -1 snow": "Invalid guidance_scale for edit",
    "/edit --colour red snow": "has no option --colour",
    "/generate a cat --size 99999x99999": "Invalid width for generate",
    "/som 0": "Invalid max_regions for som",
    "/classify 9999": "Invalid rounds for classify",
    "/caption img1.v9": "no version 9",
    "/edit img99 snow": "no image 'img99'",
    "/score " + " | ".join(f"l{i}" for i in range(1000)): "at most 100",
    "/score": "Give the labels to score after /score, e.g. '/score cat | dog'.",  # the page's syntax
    "/score siglip:": "e.g. '/score cat | dog'",
    "/mark": "has no markers",
    "/frobnicate \x00 \ud800": "Unknown command /frobnicate.",
    "/ask " + "x" * 9000: "the limit is 8000",
}


@pytest.fixture(scope="module")
def real(assistant):
    return assistant.router


@pytest.mark.parametrize("command", list(COMMANDS), ids=lambda c: c[:40].replace("\x00", "NUL"))
def test_slash_command_with_bad_arguments(assistant, real, tmp_path, command):
    store = assistant.sessions
    session = store.create()
    session.add_image(Image.open(sample_image(tmp_path / "a.png")), "a.png")
    store.save(session)
    images = session.model_dump(mode="json")["images"]
    events = list(real.respond(session, command))
    reply = events[-1].message.content
    first = reply.splitlines()[0]
    assert COMMANDS[command] in (first if first.startswith("Unknown") else sentence(reply)), reply
    store.save(session)  # still savable
    assert state(store, session.id)[1]["images"] == images and len(session.messages) == 2
    assert list(real.respond(session, "/help"))[-1].message.content.startswith("Commands")


def test_real_router_scores_japanese_labels(assistant, real, tmp_path):
    from chat.ui.handlers import Handlers

    hr = Handlers(assistant, router=real)
    sid = hr.upload(None, [str(sample_image(tmp_path / "a.png"))]).session_id
    view = list(hr.turn(sid, "/score 猫 | 犬 | 猫"))[-1]
    assert "猫" in view.chat[-1]["content"] and not view.status.startswith("⚠")


# -- gradio_client against the served app ---------------------------------------------------------
@pytest.fixture(scope="module")
def served_small(small):
    from chat.app import create_app

    app = create_app(small, router=ScriptedRouter(delay=0))
    yield launch(app), app
    app.close()


def files(*datas):
    from gradio_client import handle_file

    return lambda tmp: [[handle_file(write(tmp, d, f"f{i}.png")) for i, d in enumerate(datas)]]


GRADIO = {  # (api_name, inputs, phrase in the status; None: accepted)
    "zero-byte file": ("/upload", files(b""), "empty"),
    "svg named .png": ("/upload", files(b"<svg xmlns='http://www.w3.org/2000/svg'/>"), "SVG/HTML"),
    "truncated png": ("/upload", lambda tmp: files(enc(noise())[:3000])(tmp), "truncated"),
    "50000x50000 header": ("/upload", files(png_header(50000, 50000)), "too large"),
    "over the byte limit": ("/upload", lambda tmp: files(enc(noise().resize((320, 320))) * 3)(tmp), "the limit is"),
    "too many images": ("/upload", lambda tmp: files(*[enc(Image.new("RGB", (8, 8)))] * 3)(tmp), "do not fit"),
    "point outside": ("/add_point", lambda tmp: [5000, 10, "circle", "red"], "outside the image"),
    "missing image": ("/select_image", lambda tmp: ["img99"], "no image"),
    "missing version": ("/revert", lambda tmp: ["img1.v9"], "no version 9"),
    "100,000 characters": ("/ask", lambda tmp: ["x" * 100_000], "the limit is 2000"),
    "empty message": ("/ask", lambda tmp: [""], "Type a message first"),
    "1,000 labels": ("/score", lambda tmp: ["|".join(map(str, range(1000))), "clip"], "at most 5"),
    "empty labels": ("/score", lambda tmp: ["  ", "clip"], "Type some labels"),
    "resume a path": ("/resume", lambda tmp: ["../../etc/passwd"], "no saved session"),
    "Japanese and control characters": ("/ask", lambda tmp: ["これは何？\x00\x1b[31m\u202e"], None),
    "cmyk jpeg": ("/upload", lambda tmp: files(GOOD_FILES["cmyk jpeg"][0]())(tmp), None),
    "1x1 image": ("/upload", lambda tmp: files(GOOD_FILES["1x1"][0]())(tmp), None),
}


@pytest.mark.parametrize("case", list(GRADIO))
def test_gradio_client(served_small, tmp_path, case):
    from gradio_client import Client, handle_file

    url, app = served_small
    api, inputs, phrase = GRADIO[case]
    client = Client(url, verbose=False, download_files=True)
    out = client.predict([handle_file(str(sample_image(tmp_path / "photo.png")))], api_name="/upload")
    assert out[STATUS].startswith("Added img1.")
    store = app.mmchat_handlers.store
    sid = sid_of(app, client)
    before = state(store, sid)
    out = client.predict(*inputs(tmp_path), api_name=api)
    if phrase is None:
        assert not out[STATUS].startswith("⚠") and not LEAK.search(out[STATUS]), out[STATUS]
        assert len(out[THUMBS]) == 2 if api == "/upload" else text(out[CHAT][-1]).startswith("You asked: ")
    else:
        assert out[STATUS].startswith("⚠") and phrase in sentence(out[STATUS]), out[STATUS]
        assert state(store, sid) == before
    out = client.predict("still there?", api_name="/ask")
    assert text(out[CHAT][-1]).startswith("You asked: still there?") and out[IMAGE] is not None


def test_lone_surrogate_over_http(served_small):
    """A browser's JSON.stringify escapes a lone surrogate as \\ud800 (gradio_client cannot send one at all):
    the server answers and saves the message with U+FFFD in its place."""
    import httpx

    url, app = served_small
    body = json.dumps({"data": [None, "hi \ud800 there"]})  # ensure_ascii: sent as \ud800, as a browser does
    event = httpx.post(url + "gradio_api/call/ask", content=body, headers={"content-type": "application/json"}).json()
    with httpx.stream("GET", url + f"gradio_api/call/ask/{event['event_id']}", timeout=60) as stream:
        events = "".join(stream.iter_text())
    final = events.split("event: complete")[1]
    assert "You asked: hi \\ufffd there" in final and "\\u26a0" not in final and "⚠" not in final and "event: error" not in events
    sid = next(s["id"] for s in app.mmchat_handlers.store.list() if s["title"].startswith("hi "))
    disk = json.loads((app.mmchat_handlers.store.root / "sessions" / sid / "session.json").read_bytes())
    assert disk["messages"][0]["content"] == "hi \ufffd there"


def test_queue_size_is_the_configured_one(tiny_config, monkeypatch):
    import gradio as gr

    from chat.server import serve

    seen = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **options: seen.update(app=self, **options))
    config = tiny_config.model_copy(update={"server": tiny_config.server.model_copy(update={"queue_size": 3})})
    serve(config, port=0)
    assert seen["app"]._queue.max_size == 3 and seen["max_file_size"] == config.limits.max_upload_bytes


def test_one_region_reads_as_one(assistant, real, tmp_path):
    """Set-of-Mark on a 1x1 picture said "refer to them as [1] to [1]"; one region reads as one, in Japanese too."""
    from chat.ui.handlers import Handlers
    from chat.ui.texts import translate

    hr = Handlers(assistant, router=real)
    sid = hr.upload(None, [str(sample_image(tmp_path / "dot.png", size=(1, 1)))]).session_id
    reply = list(hr.turn(sid, "/som"))[-1].chat[-1]["content"]
    reply = reply if isinstance(reply, str) else reply[0]
    assert reply == "Numbered 1 region of img1.v1 (Set-of-Mark); refer to it as [1].", reply
    assert translate(reply, "ja") == "img1.v1 の領域 1 か所に番号を付けました(Set-of-Mark)。[1] で参照できます。"
