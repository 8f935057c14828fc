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
