"""Loop hooks: what subscribes to a run's events (loggers, progress, checkpoints, signals).

Subclass :class:`Hook` and override the events you need; the loop calls every event of
every hook (the defaults do nothing)."""

from __future__ import annotations


class Hook:
    """Base class of loop hooks; every method is an event, a no-op by default."""

    def on_start(self, info: dict) -> None:
        """Once, before the first generation of this session: ``generations``, ``population``,
        ``start_generation``, ``evaluations`` and ``elapsed`` so far."""

    def on_generation_start(self, generation: int, n_evaluations: int) -> None:
        """A generation's evaluations begin."""

    def on_evaluations(self, done: int, total: int) -> None:
        """Progress within a generation, as the executor finishes tasks."""

    def on_job(self, job, result) -> None:
        """Asynchronous loop: one job's result has been told to the strategy (``job``: an
        :class:`~evonet.strategies.aging.Job`; the result's training state already moved out)."""

    def on_generation(self, record: dict, strategy) -> None:
        """The generation's logbook record."""

    def after_generation(self, state, strategy) -> None:
        """The complete loop state once the generation is over (what a checkpoint needs);
        ``state.last`` is true for the last one."""

    def on_interrupt(self, state) -> None:
        """Ctrl-C or a termination signal arrived (the exception is re-raised after the hooks)."""

    def on_end(self, result) -> None:
        """After the final choice among the hall of fame."""
