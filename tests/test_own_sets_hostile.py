"""Hostile uploads to a set (cifar_core.data.own_sets, cifar_core.data.zips): each refused or
skipped with one sentence, nothing written outside the set's folder, the set never half-written."""

from __future__ import annotations

import errno
import io
import stat
import struct
import zipfile
from pathlib import Path

import pytest
from conftest import jpeg
from PIL import Image

from cifar_core.data import own_sets, zips
from cifar_core.data.own_sets import (
    MAX_FILE_BYTES,
    MIN_PICTURES,
    add_class,
    add_pictures,
    add_zip,
    check_class_name,
    create_set,
    get_set,
    rename_class,
    sets_folder,
)
from cifar_core.errors import DataError
from cifar_core.explain.photos import read_photo


@pytest.fixture(autouse=True)
def forget_watched_runs_folders():
    """The runs folders a test watched are forgotten after it (the registry is per process)."""
    before = set(own_sets._watched)
    yield
    own_sets._watched.intersection_update(before)
    own_sets.register_sets()


@pytest.fixture
def runs(tmp_path) -> Path:
    return tmp_path / "runs"


@pytest.fixture
def desk(runs):
    """A set with two classes and a few pictures: what a hostile upload must leave as it is."""
    create_set("desk", "Desk", ["mug", "pen"], runs_dir=runs)
    add_pictures("desk", "mug", [jpeg((48, 48), seed=i) for i in range(4)], runs_dir=runs)
    return sets_folder(runs) / "desk"


def tree(root: Path) -> dict[str, bytes]:
    """Every file under `root` and its bytes (the lock file aside: it is the lock's, empty)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def folders(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_dir()}


@pytest.fixture
def unchanged(tmp_path, desk):
    """Checks, after the test's hostile upload, that nothing under tmp_path changed: not the
    set (no file, no folder, no staging left) and nothing outside it."""
    files_before, folders_before = tree(tmp_path), folders(tmp_path)

    def check():
        assert tree(tmp_path) == files_before
        assert folders(tmp_path) == folders_before

    return check


def png(size=(40, 40), seed=0) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (seed * 40 % 256, 90, 200)).save(out, "PNG")
    return out.getvalue()


def zip_of(entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return out.getvalue()


@pytest.fixture
def entries_read(monkeypatch) -> list[int]:
    """How many bytes each read of a zip entry returned."""
    sizes: list[int] = []
    real_read = zipfile.ZipExtFile.read

    def read(self, n=-1):
        data = real_read(self, n)
        sizes.append(len(data))
        return data

    monkeypatch.setattr(zipfile.ZipExtFile, "read", read)
    return sizes


def one_sentence(message: str) -> None:
    assert message.count(". ") == 0 and message.endswith(".") and "\n" not in message
    assert "Traceback" not in message


# --- Zips --------------------------------------------------------------------------------------

def test_a_zip_bomb_entry_over_a_picture_s_size_is_skipped_unread(runs, desk, entries_read):
    bomb = zip_of({"mug/bomb.png": b"\0" * (MAX_FILE_BYTES + 2**20), "mug/ok.png": png()})
    assert len(bomb) < 2**20  # highly compressible: a small upload, a huge picture

    added = add_zip("desk", bomb, runs_dir=runs)

    assert [p.class_name for p in added.added] == ["mug"]
    [sentence] = added.skipped
    assert "bomb.png" in sentence and "skipped" in sentence
    one_sentence(sentence)
    assert sum(entries_read) < 2**20  # the bomb was never read


def test_an_entry_bigger_than_its_header_says_is_read_no_further_than_the_cap(
        runs, desk, entries_read):
    bomb = bytearray(zip_of({"mug/liar.png": b"\0" * (3 * MAX_FILE_BYTES)}))
    # Both headers claim 1,000 bytes; the compressed data unzips to three times the cap.
    local = bomb.index(b"PK\x03\x04")
    bomb[local + 22:local + 26] = struct.pack("<I", 1000)
    central = bomb.index(b"PK\x01\x02")
    bomb[central + 24:central + 28] = struct.pack("<I", 1000)

    added = add_zip("desk", bytes(bomb), runs_dir=runs)

    assert added.added == () and len(added.skipped) == 1 and "liar.png" in added.skipped[0]
    assert sum(entries_read) <= MAX_FILE_BYTES + 1


def test_a_zip_whose_entries_declare_over_the_unzipped_cap_is_refused_before_any_is_read(
        runs, unchanged, entries_read):
    count = zips.MAX_UNZIPPED_BYTES // MAX_FILE_BYTES + 2
    archive = bytearray(zip_of({f"mug/{i}.png": png(seed=i) for i in range(count)}))
    at = 0
    for _ in range(count):  # each entry's central record claims just under a picture's cap
        at = archive.index(b"PK\x01\x02", at + 1)
        archive[at + 24:at + 28] = struct.pack("<I", MAX_FILE_BYTES - 1)

    with pytest.raises(DataError, match="would unzip to over") as refused:
        add_zip("desk", bytes(archive), runs_dir=runs)

    one_sentence(str(refused.value))
    assert entries_read == []
    unchanged()


def test_paths_leading_out_and_links_are_skipped_and_nothing_is_written_outside(
        tmp_path, runs, desk):
    outside = tree(tmp_path)
    leading_out = zip_of({name: png() for name in (
        "../x.png", "/etc/x.png", "C:\\x.png", "mug/../../../x.png", "..\\..\\x.png")})
    link = zipfile.ZipInfo("mug/link.png")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(link, "/etc/passwd")
        archive.writestr("loose.png", png())
        archive.writestr("pen/good.png", png(seed=3))

    refused = add_zip("desk", leading_out, runs_dir=runs)
    added = add_zip("desk", out.getvalue(), runs_dir=runs)

    assert refused.added == () and len(refused.skipped) == 5
    assert all("leads out of the zip's folder" in s for s in refused.skipped)
    assert [(p.class_name, p.split) for p in added.added] == [("pen", "train")]
    assert len(added.skipped) == 2
    assert "link.png is a link" in added.skipped[0]
    assert "loose.png is not in a class folder" in added.skipped[1]
    for sentence in refused.skipped + added.skipped:
        assert sentence.endswith(".") and "\n" not in sentence
    # Nothing new anywhere but the one picture in the set's pen/ folder.
    now = tree(tmp_path)
    new = set(now) - set(outside)
    assert len(new) == 1 and new.pop().startswith("runs/datasets/desk/train/pen/")
    assert all(now[path] == data for path, data in outside.items())
    assert not list(tmp_path.rglob("x.png")) and not (tmp_path / "etc").exists()


def test_tens_of_thousands_of_entries_are_refused_before_any_is_read(
        runs, unchanged, entries_read, monkeypatch):
    archive = zip_of({f"mug/{i}.png": b"" for i in range(20_000)}, zipfile.ZIP_STORED)
    parsed = []
    monkeypatch.setattr(zipfile.ZipFile, "_RealGetContents",
                        lambda self: parsed.append(self) or None)

    with pytest.raises(DataError, match="20,000 entries") as refused:
        add_zip("desk", archive, runs_dir=runs)

    one_sentence(str(refused.value))
    assert parsed == [] and entries_read == []  # not even its list of files was read
    unchanged()


def test_a_zip_that_is_not_a_zip_is_refused(runs, unchanged):
    with pytest.raises(DataError, match="is not a zip file") as refused:
        add_zip("desk", jpeg(), runs_dir=runs)
    one_sentence(str(refused.value))
    unchanged()


def test_a_damaged_zip_is_refused_and_a_damaged_entry_skipped(runs, desk, tmp_path):
    whole = zip_of({"mug/a.png": png(seed=1), "pen/b.png": png(seed=2)})
    before = tree(tmp_path)
    with pytest.raises(DataError, match="is damaged") as refused:
        add_zip("desk", whole[:len(whole) - 30], runs_dir=runs)  # its list of files cut off
    one_sentence(str(refused.value))
    assert tree(tmp_path) == before

    damaged = bytearray(zip_of({"mug/a.png": png(seed=1) * 3, "pen/b.png": png(seed=2)}))
    start = damaged.index(b"PK\x03\x04") + 30 + len("mug/a.png")
    damaged[start:start + 40] = bytes(40)  # the first entry's compressed data spoilt
    added = add_zip("desk", bytes(damaged), runs_dir=runs)
    assert [p.class_name for p in added.added] == ["pen"]
    assert len(added.skipped) == 1 and "mug/a.png" in added.skipped[0]
    assert "damaged" in added.skipped[0]


def test_a_zip_over_the_upload_cap_is_refused_before_it_is_read(runs, unchanged, monkeypatch):
    monkeypatch.setattr(zips, "MAX_ZIP_BYTES", 1000)

    class Upload(io.BytesIO):  # as Streamlit's UploadedFile: its size known beforehand
        name, size = "big.zip", 5000

        def getvalue(self):
            raise AssertionError("read")

    with pytest.raises(DataError, match="big.zip is") as refused:
        add_zip("desk", Upload(), runs_dir=runs)
    one_sentence(str(refused.value))
    unchanged()


def test_zip_folders_named_alike_go_to_one_class_and_bad_names_are_skipped(runs, desk):
    added = add_zip("desk", zip_of({"Mug/a.png": png(seed=1), "MUG/b.png": png(seed=2),
                                     "cup\x07/c.png": png(seed=3), "Cup/d.png": png(seed=4)}),
                    runs_dir=runs)
    assert sorted(p.class_name for p in added.added) == ["Cup", "mug", "mug"]
    [sentence] = added.skipped
    assert "control characters" in sentence
    assert [c.name for c in added.set.classes] == ["Cup", "mug", "pen"]


def test_a_zip_of_many_skipped_entries_says_a_few_then_how_many_more(runs, desk):
    added = add_zip("desk", zip_of({f"mug/{i}.txt": b"text" for i in range(12)}),
                    runs_dir=runs)
    assert added.added == ()
    assert len(added.skipped) == own_sets.SHOWN_SKIPS + 1
    assert added.skipped[-1] == "And 7 more files were skipped."


# --- Pictures and names -------------------------------------------------------------------------

def test_files_that_are_not_pictures_or_too_small_are_skipped_with_a_sentence(runs, desk):
    added = add_pictures("desk", "pen", [b"just some text", b"%PDF-1.4 a document",
                                         png(size=(10, 10)), jpeg((48, 48), seed=9)],
                         runs_dir=runs)
    assert len(added.added) == 1 and len(added.skipped) == 3
    assert "PDF" in added.skipped[1]
    assert "small" in added.skipped[2] or "16" in added.skipped[2]
    for sentence in added.skipped:
        assert "\n" not in sentence and "Traceback" not in sentence


def test_a_class_with_no_pictures_says_what_to_add(runs, desk):
    own = get_set("desk", runs_dir=runs)
    assert own.problem() == f"Add {MIN_PICTURES} more pictures of pen: each class needs at " \
                            f"least {MIN_PICTURES}."
    own = add_class("desk", "lamp", runs_dir=runs)
    assert "pen" in own.problem() and "lamp" in own.problem()


def test_two_classes_with_the_same_name_are_refused(runs, unchanged):
    with pytest.raises(DataError, match="already a class named 'mug'"):
        add_class("desk", "MUG", runs_dir=runs)
    with pytest.raises(DataError, match="already a class named 'mug'"):
        rename_class("desk", "pen", " Mug ", runs_dir=runs)
    with pytest.raises(DataError, match="already a class named 'cup'"):
        create_set("kitchen", classes=["cup", "Cup"], runs_dir=runs)
    assert not (sets_folder(runs) / "kitchen").exists()
    unchanged()


@pytest.mark.parametrize("bad", ["a/b", "a\\b", "bad\nname", "tab\tname", "\x00", "..", ".",
                                 ".hidden", "", "   ", "x" * 41])
def test_class_names_with_slashes_or_control_characters_are_refused(bad, runs, unchanged):
    with pytest.raises(DataError) as refused:
        check_class_name(bad)
    one_sentence(str(refused.value))
    with pytest.raises(DataError):
        add_class("desk", bad, runs_dir=runs)
    with pytest.raises(DataError):
        add_pictures("desk", bad, [png()], runs_dir=runs)
    unchanged()


@pytest.mark.parametrize("bad", ["../escape", "a/b", "/etc", "bad\nname", "Desk", ".hidden"])
def test_set_names_with_slashes_or_control_characters_are_refused(bad, tmp_path, runs):
    with pytest.raises(DataError, match="cannot name a set"):
        create_set(bad, runs_dir=runs)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_a_class_name_is_kept_as_typed_less_the_spaces_around_it():
    assert check_class_name("  coffee mug ") == "coffee mug"


# --- Caps and the disk ----------------------------------------------------------------------------

def test_a_set_over_its_picture_cap_is_refused_whole(runs, unchanged, monkeypatch):
    monkeypatch.setattr(own_sets, "MAX_PICTURES", 6)  # the set holds 4
    with pytest.raises(DataError, match="at most 6 pictures") as refused:
        add_pictures("desk", "pen", [png(seed=i) for i in range(3)], runs_dir=runs)
    one_sentence(str(refused.value))
    with pytest.raises(DataError, match="at most 6 pictures"):
        add_zip("desk", zip_of({f"pen/{i}.png": png(seed=i) for i in range(3)}), runs_dir=runs)
    unchanged()


def test_a_set_over_its_class_cap_is_refused(runs, unchanged, monkeypatch):
    monkeypatch.setattr(own_sets, "MAX_CLASSES", 2)  # the set has 2
    with pytest.raises(DataError, match="at most 2 classes"):
        add_class("desk", "lamp", runs_dir=runs)
    with pytest.raises(DataError, match="at most 2 classes"):
        add_pictures("desk", "lamp", [png()], runs_dir=runs)
    with pytest.raises(DataError, match="at most 2 classes"):
        add_zip("desk", zip_of({"mug/a.png": png(), "lamp/b.png": png(seed=2)}), runs_dir=runs)
    with pytest.raises(DataError, match="at most 2 classes"):
        create_set("three", classes=["a", "b", "c"], runs_dir=runs)
    unchanged()


def test_a_set_over_its_size_on_disk_is_refused_whole(runs, desk, monkeypatch):
    before = tree(desk)
    used = sum(len(data) for data in before.values())
    kept = len(own_sets._png(read_photo(png()).network_input))  # a picture as the set keeps it
    monkeypatch.setattr(own_sets, "MAX_SET_BYTES", used + 2 * kept + kept // 2)
    with pytest.raises(DataError, match="MB on disk"):
        add_pictures("desk", "pen", [png(seed=i) for i in range(5)], runs_dir=runs)
    assert tree(desk) == before


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_a_full_disk_midway_is_rolled_back_and_said_in_one_sentence(code, runs, unchanged,
                                                                    monkeypatch):
    real_write = Path.write_bytes
    written = []

    def write_bytes(self, data):
        if len(written) == 2:  # the third picture finds the disk full
            raise OSError(code, "No space left on device")
        written.append(self)
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    with pytest.raises(DataError, match="The disk is full") as refused:
        add_pictures("desk", "pen", [png(seed=i) for i in range(5)], runs_dir=runs)
    one_sentence(str(refused.value))
    assert len(written) == 2
    with pytest.raises(DataError, match="The disk is full"):
        add_zip("desk", zip_of({f"pen/{i}.png": png(seed=i) for i in range(5)}), runs_dir=runs)
    unchanged()


def test_a_full_disk_while_a_set_is_made_leaves_no_set(runs, tmp_path, monkeypatch):
    def write_bytes(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    with pytest.raises(DataError, match="The disk is full"):
        create_set("desk", classes=["mug", "pen"], runs_dir=runs)
    assert list(sets_folder(runs).iterdir()) == []


def test_a_failure_while_pictures_move_into_place_undoes_every_move(runs, desk, monkeypatch):
    before = tree(desk)
    real_rename = own_sets.os.rename
    moves, failed = [], []

    def rename(source, target):
        if len(moves) == 3 and not failed:  # the fourth picture's move fails, once
            failed.append(target)
            raise OSError(errno.EIO, "Input/output error")
        moves.append(target)
        return real_rename(source, target)

    monkeypatch.setattr(own_sets.os, "rename", rename)
    with pytest.raises(DataError, match="could not be changed"):
        add_pictures("desk", "mug", [png(seed=i) for i in range(6)], runs_dir=runs)
    monkeypatch.setattr(own_sets.os, "rename", real_rename)
    assert failed and tree(desk) == before
    assert not [p for p in desk.iterdir() if p.name.startswith(".staging")]
