"""Persistence: sessions survive a restart (new store on the same folder), writes are atomic."""

import zipfile

import pytest
from PIL import Image

from chat.errors import UserError
from chat.session import TraceEntry
from chat.store import SessionStore, atomic_write
from tools.markers import Marker


def _session_with_history(store):
    s = store.create()
    rec = s.add_image(Image.new("RGB", (40, 30), "blue"), name="blue.png")
    s.add_marker(Marker(x=10, y=12), rec.id)
    s.add_version(rec.id, Image.new("RGB", (40, 30), "green"), note="edit: make it green")
    s.add_message("user", "make it green", images=[rec.id + ".v1"])
    s.add_message("assistant", "Done: img1.v2")
    s.add_trace(TraceEntry(tool="edit", arguments={"instruction": "make it green", "seed": 3}, seconds=0.5))
    store.save(s)
    return s


def test_restart_keeps_everything(tmp_path):
    s = _session_with_history(SessionStore(tmp_path))
    reopened = SessionStore(tmp_path).get(s.id)  # a new process would do exactly this
    assert [v.id for v in reopened.record("img1").versions] == ["img1.v1", "img1.v2"]
    assert reopened.record("img1").current_id == "img1.v2"
    assert reopened.pixels("img1.v1").getpixel((0, 0)) == (0, 0, 255)
    assert reopened.pixels().getpixel((0, 0)) == (0, 128, 0)
    assert reopened.record("img1").markers[0].x == 10
    assert [m.content for m in reopened.messages] == ["make it green", "Done: img1.v2"]
    assert reopened.trace[0].arguments["seed"] == 3
    assert SessionStore(tmp_path).list()[0]["id"] == s.id


def test_export_import_round_trip(tmp_path):
    store = SessionStore(tmp_path)
    s = _session_with_history(store)
    path = store.export_zip(s)
    names = zipfile.ZipFile(path).namelist()
    assert {"session.json", "conversation.md", "trace.json", "images/img1.v1.png", "images/img1.v2.png"} <= set(names)
    copy = SessionStore(tmp_path / "other").import_zip(path)
    assert copy.id != s.id
    assert copy.pixels("img1.v2").getpixel((5, 5)) == (0, 128, 0)
    assert copy.messages[0].content == "make it green"


def test_bad_ids_and_files(tmp_path):
    store = SessionStore(tmp_path)
    with pytest.raises(UserError):
        store.get("../../etc/passwd")
    with pytest.raises(UserError):
        store.get("0" * 32)
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    with pytest.raises(UserError, match="not an mmchat export"):
        store.import_zip(junk)


def test_atomic_write_never_leaves_a_torn_file(tmp_path, monkeypatch):
    target = tmp_path / "session.json"
    atomic_write(target, b"old")

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["session.json"]
