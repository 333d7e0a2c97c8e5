"""The training-length sweep that Figs. 1, 2, 3/14 and 5 are all computed from."""

from __future__ import annotations

from vmaptrain.replicate.common import run_study, study_numbers


def duration_studies(workdir: str, scale, progress: bool) -> dict:
    """{epochs: StudyResult}, one study of scale.num_seeds runs per training length."""
    return {e: run_study(workdir, f"epochs_{e:04d}", scale.config(epochs=e), progress) for e in scale.epochs}


def duration_numbers(workdir: str, scale, progress: bool) -> list[dict]:
    return [study_numbers(result, epochs) for epochs, result in duration_studies(workdir, scale, progress).items()]
