"""The executor a job runs on, chosen by its spec: `mode` (online or provider batch) and `executor` (local
or Ray). The CLI, the service's worker and the Python API all start runs here, so a job launched from the
console in batch mode runs exactly as `skuforge run --mode batch` does.
"""

from __future__ import annotations

from typing import Any

from skuforge.config import Settings, load_settings
from skuforge.engine.progress import ProgressCallback
from skuforge.engine.runner import Executor, Runner
from skuforge.engine.spec import JobSpec
from skuforge.errors import UserError
from skuforge.store import Job, Store

MODES = ("online", "batch")
EXECUTORS = ("local", "ray")


def check_choice(mode: str, executor: str) -> None:
    """Refuse an unknown or impossible combination before anything runs."""
    if mode not in MODES or executor not in EXECUTORS:
        raise UserError(
            f"Unknown --mode '{mode}' or --executor '{executor}'.",
            "Use --mode online|batch and --executor local|ray.",
        )
    if mode == "batch" and executor == "ray":
        raise UserError(
            "--mode batch runs in this process; it cannot use --executor ray.", "Drop one of them."
        )


def executor_for(spec: JobSpec, **options: Any) -> Executor:
    """The executor object for the spec's mode and executor (options go to its constructor)."""
    check_choice(spec.mode, spec.executor)
    if spec.mode == "batch":
        from skuforge.engine.batch import BatchExecutor

        return BatchExecutor(**options)
    if spec.executor == "ray":
        from skuforge.engine.ray_runner import RayExecutor

        return RayExecutor(address=spec.ray_address, **options)
    from skuforge.engine.local import LocalExecutor

    return LocalExecutor(**options)


def make_executor(
    store: Store,
    job: Job,
    settings: Settings | None = None,
    *,
    on_progress: ProgressCallback | None = None,
    provider_factory: Any = None,
    **options: Any,
) -> Runner:
    """The runner for the job on its executor; all of them record into the same store the same way."""
    return Runner(
        store,
        job,
        settings=settings or load_settings(),
        on_progress=on_progress,
        provider_factory=provider_factory,
        executor=executor_for(JobSpec.from_job(job), **options),
    )
