"""Persistence: sessions survive a restart (new store on the same folder), writes are atomic."""

import zipfile

import pytest
from PIL import Image

from chat.config import LimitsConfig
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


def _richer_session(store):
    """Two images, three versions of the first (with a revert), markers of several shapes, a trace."""
    s = _session_with_history(store)
    s.add_marker(Marker(x=30, y=5, shape="box", color="green", bbox=(20, 2, 38, 9)), "img1")
    s.add_version("img1", Image.new("RGB", (40, 30), (250, 10, 10)), note="edit: make it red", parent="img1.v1")
    s.revert("img1.v2")
    two = s.add_image(Image.linear_gradient("L").resize((64, 48)).convert("RGB"), name="grad.png")
    s.add_marker(Marker(x=5, y=40, shape="arrow", color="yellow"), two.id)
    s.add_message("user", "compare them", images=["img1.v2", "img2.v1"])
    s.add_message("assistant", "img2 is a gradient.", images=["img2.v1"]).trace = [0, 1]
    s.add_trace(TraceEntry(tool="score", arguments={"labels": ["cat", "dog"]}, summary="cat 0.7", decision="button"))
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
    s = _richer_session(store)
    path = store.export_zip(s)
    names = zipfile.ZipFile(path).namelist()
    versions = [v.id for r in s.images.values() for v in r.versions]
    assert versions == ["img1.v1", "img1.v2", "img1.v3", "img2.v1"]
    assert {"session.json", "conversation.md", "trace.json", *(f"images/{v}.png" for v in versions)} <= set(names)
    copy = SessionStore(tmp_path / "other").import_zip(path)
    assert copy.id != s.id
    for version in versions:  # every version's pixels, exactly
        assert copy.pixels(version).tobytes() == s.pixels(version).tobytes(), version
    for image_id, record in s.images.items():  # versions (ids, parents, notes), current one, markers
        other = copy.images[image_id]
        assert other.model_dump(exclude={"versions"}) == record.model_dump(exclude={"versions"})
        assert [v.model_dump() for v in other.versions] == [v.model_dump() for v in record.versions]
    assert copy.record("img1").current_id == "img1.v2" and copy.active == "img2"
    assert [m.model_dump() for m in copy.messages] == [m.model_dump() for m in s.messages]
    assert [t.model_dump() for t in copy.trace] == [t.model_dump() for t in s.trace]
    assert len(copy.trace) == 2 and copy.trace[0].arguments["seed"] == 3
    reopened = SessionStore(tmp_path / "other").get(copy.id)  # and it was saved as imported
    assert reopened.model_dump(exclude={"id"}) == s.model_dump(exclude={"id"})
    assert all(reopened.pixels(v).tobytes() == s.pixels(v).tobytes() for v in versions)


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


# -- imports are held to limits ---------------------------------------------------------------------------
def _limits(**overrides) -> LimitsConfig:
    return LimitsConfig(**overrides)


def _refused(store, path, phrase):
    with pytest.raises(UserError) as caught:
        store.import_zip(path)
    sentence = str(caught.value)
    assert phrase in sentence and sentence.endswith(".") and "\n" not in sentence, sentence
    assert store.list() == []  # nothing was imported
    return sentence


def test_zip_bomb_is_refused_before_anything_is_decompressed(tmp_path, monkeypatch):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("session.json", "{}")
        with zf.open("images/img1.v1.png", "w") as fh:
            for _ in range(64):
                fh.write(bytes(2**20))  # 64 MiB of zeros, 64 KiB compressed
    assert bomb.stat().st_size < 2**20
    store = SessionStore(tmp_path / "data", limits=_limits(max_import_bytes=32 * 2**20))
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, name, *a, **k: pytest.fail(f"{name} was decompressed"))
    sentence = _refused(store, bomb, "the limit is 32.0 MiB")
    assert sentence == "That export is 64.0 MiB uncompressed; the limit is 32.0 MiB."


def test_the_default_limit_refuses_a_gigabyte_bomb(tmp_path, monkeypatch):
    """A member whose directory entry declares 1.5 GiB (zipfile never yields more than a member declares)."""
    bomb = tmp_path / "big.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("session.json", "{}")
    data = bytearray(bomb.read_bytes())
    entry = data.index(b"PK\x01\x02")  # central directory header; uncompressed size at +24
    data[entry + 24:entry + 28] = (3 * 2**29).to_bytes(4, "little")
    bomb.write_bytes(bytes(data))
    assert zipfile.ZipFile(bomb).getinfo("session.json").file_size == 3 * 2**29
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, name, *a, **k: pytest.fail(f"{name} was decompressed"))
    _refused(SessionStore(tmp_path / "data"), bomb, "1.5 GiB uncompressed; the limit is 1.0 GiB")


def test_too_many_files_are_refused_before_reading(tmp_path, monkeypatch):
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as zf:
        zf.writestr("session.json", "{}")
        for i in range(300):
            zf.writestr(f"junk/{i}.txt", "x")
    store = SessionStore(tmp_path / "data", limits=_limits(max_import_files=100))
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, name, *a, **k: pytest.fail(f"{name} was decompressed"))
    assert _refused(store, many, "301 files") == "That export has 301 files; the limit is 100."


def test_an_import_keeps_the_images_per_session_limit(tmp_path):
    source = SessionStore(tmp_path / "src")
    path = source.export_zip(_richer_session(source))  # two images
    store = SessionStore(tmp_path / "data", limits=_limits(max_images_per_session=1))
    assert _refused(store, path, "2 images") == "That export has 2 images; a session holds at most 1."
    assert SessionStore(tmp_path / "ok", limits=_limits(max_images_per_session=2)).import_zip(path).images


def test_an_import_keeps_the_message_length_limit(tmp_path):
    source = SessionStore(tmp_path / "src")
    s = _session_with_history(source)
    s.add_message("user", "y" * 9000)
    s.add_message("assistant", "z" * 20000)  # answers are not what the limit is about
    path = source.export_zip(s)
    store = SessionStore(tmp_path / "data", limits=_limits(max_message_chars=8000))
    assert _refused(store, path, "9000") == "Message 3 of that export is 9000 characters long; the limit is 8000."
    copy = SessionStore(tmp_path / "ok", limits=_limits(max_message_chars=9000)).import_zip(path)
    assert len(copy.messages[2].content) == 9000


def test_an_image_in_an_export_is_checked_like_an_upload(tmp_path):
    source = SessionStore(tmp_path / "src")
    path = source.export_zip(_session_with_history(source))
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(bad, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            zout.writestr(item, b"<svg xmlns='http://www.w3.org/2000/svg'/>" if item.filename.endswith("v2.png") else data)
    _refused(SessionStore(tmp_path / "data"), bad, "SVG/HTML")


def test_an_image_file_left_by_a_killed_save_is_overwritten_not_reused(tmp_path):
    """A save killed after writing img1.v2.png but before session.json leaves an unlisted file; after a restart
    the next img1.v2 must be stored with its own pixels."""
    s = SessionStore(tmp_path).create()
    s.add_image(Image.new("RGB", (40, 30), "blue"), name="blue.png")
    SessionStore(tmp_path).save(s)
    orphan = tmp_path / "sessions" / s.id / "images" / "img1.v2.png"
    Image.new("RGB", (40, 30), "red").save(orphan)  # what the killed save wrote
    store = SessionStore(tmp_path)  # the restarted server
    resumed = store.get(s.id)
    assert [v.id for v in resumed.record().versions] == ["img1.v1"]
    resumed.add_version("img1", Image.new("RGB", (40, 30), "green"), note="edit: make it green")
    store.save(resumed)
    assert SessionStore(tmp_path).get(s.id).pixels("img1.v2").getpixel((0, 0)) == (0, 128, 0)


def test_a_set_of_mark_overlay_survives_a_restart_and_an_export_leaves_it_out(tmp_path):
    import numpy as np

    from tools.som import set_of_mark

    store = SessionStore(tmp_path)
    s = store.create()
    image = Image.linear_gradient("L").resize((64, 48)).convert("RGB")
    s.add_image(image, name="grad.png")
    marked, marks, masks = set_of_mark(image, max_regions=6)
    labels = np.zeros((48, 64), dtype=np.uint8)
    for number, mask in enumerate(masks, 1):
        labels[mask] = number
    s.set_overlay("img1", marked, labels)
    store.save(s)
    reopened = SessionStore(tmp_path).get(s.id)  # a new process
    assert reopened.overlay("img1.v1").tobytes() == marked.convert("RGB").tobytes()
    assert len(reopened.overlay_masks("img1")) == len(masks) == len(marks)
    assert all(np.array_equal(a, b) for a, b in zip(reopened.overlay_masks("img1"), masks))
    assert reopened.view("img1").tobytes() == marked.convert("RGB").tobytes()  # what the model and the page see
    with pytest.raises(UserError, match="does not match the 64x48 image img1.v1"):
        reopened.set_overlay("img1", marked.resize((32, 24)), labels)
    copy = SessionStore(tmp_path / "other").import_zip(store.export_zip(reopened))
    assert copy.overlay("img1") is None and copy.overlay_masks("img1") == []
    assert copy.view("img1").tobytes() == image.tobytes()


def test_a_message_keeps_what_ran_and_the_last_marker_can_be_replaced(tmp_path):
    store = SessionStore(tmp_path)
    s = _session_with_history(store)
    s.messages[0].action, s.messages[0].arguments = "edit", {"image": "img1.v1", "instruction": "make it green"}
    s.replace_last_marker(Marker(x=20, y=20, shape="box", bbox=(15, 15, 25, 25)), "img1")
    with pytest.raises(UserError, match="outside the image"):
        s.replace_last_marker(Marker(x=99, y=5), "img1")
    store.save(s)
    reopened = SessionStore(tmp_path).get(s.id)
    assert reopened.messages[0].action == "edit" and reopened.messages[0].arguments["image"] == "img1.v1"
    assert [(m.x, m.shape) for m in reopened.record("img1").markers] == [(20, "box")]
