"""Exercises: public checks for students; release, autograde and feedback for instructors.

Students use ``check`` and ``check_function`` inside the labs. Instructors use the
command line, ``python -m course_lib.grading {release,grade,validate}`` (see
docs/INSTRUCTORS.md); the engine is nbgrader (the ``[instructor]`` extra), imported
only by the instructor commands.
"""

from .checks import CheckFailed, check, check_function

__all__ = ["CheckFailed", "check", "check_function"]
