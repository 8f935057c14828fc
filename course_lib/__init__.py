"""course_lib: the one source of shared code behind the LLM Foundations labs."""

__version__ = "0.1.0"
