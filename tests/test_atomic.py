import pytest

from course_lib.atomic import atomic_write, atomic_write_text


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "out" / "grades.csv"
    atomic_write_text(target, "old\n")

    def crash(fh):
        fh.write("half of the new")
        raise KeyboardInterrupt  # a kill mid-write

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, crash)
    assert target.read_text() == "old\n"
    assert [p.name for p in target.parent.iterdir()] == ["grades.csv"]


def test_binary_write(tmp_path):
    path = atomic_write(tmp_path / "x.bin", lambda fh: fh.write(b"\x00\x01"), binary=True)
    assert path.read_bytes() == b"\x00\x01"


def test_atomic_files_get_a_normal_mode_not_mkstemps_private_one(tmp_path):
    import os
    import stat

    from course_lib.atomic import _umask, atomic_write_text

    new = atomic_write_text(tmp_path / "new.txt", "x")
    assert stat.S_IMODE(new.stat().st_mode) == 0o666 & ~_umask()
    old = tmp_path / "old.txt"
    old.write_text("a")
    os.chmod(old, 0o640)
    atomic_write_text(old, "b")
    assert stat.S_IMODE(old.stat().st_mode) == 0o640 and old.read_text() == "b"
