"""The Problem contract: every problem passes these (see evonet/core/problem.py)."""

import json

import numpy as np

from evonet import seeding
from evonet.core.problem import Problem
from evonet.core.types import EvalResult


def evaluate(problem, genomes, generation=0, chunk=None, **kw):
    chunk = chunk or len(genomes)
    out = []
    for task in problem.make_tasks(genomes, generation, range(len(genomes)), chunk, **kw):
        out.extend(problem.evaluate_task(task))
    return out


def comparable(results):
    return [(r.fitness, r.weight, r.error, tuple(sorted(r.metrics.items())), r.objectives) for r in results]


def jsonable(obj):
    return json.loads(json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


class ProblemContract:
    """Subclass with a ``make`` fixture (a zero-argument factory of a fresh problem);
    ``N`` genomes are evaluated per test; ``STOCHASTIC``: results depend on the seeds."""

    N = 4
    STOCHASTIC = True

    def genomes(self, problem, seed=0):
        return problem.init_genomes(seeding.generator(seed, seeding.PURPOSE_INIT), self.N)

    def test_is_a_problem_with_a_box(self, make):
        p = make()
        assert isinstance(p, Problem) and p.n_genes >= 1 and p.low < p.up

    def test_init_genomes_shape_bounds_and_determinism(self, make):
        p = make()
        g = self.genomes(p)
        assert g.shape == (self.N, p.n_genes)
        assert np.all(g >= p.low) and np.all(g <= p.up)
        np.testing.assert_array_equal(g, self.genomes(make()))

    def test_one_result_per_genome_whatever_the_chunking(self, make):
        p = make()
        g = self.genomes(p)
        whole = evaluate(p, g)
        assert len(whole) == self.N and all(isinstance(r, EvalResult) for r in whole)
        assert all(r.error is None and np.isfinite(r.fitness) and r.weight > 0 for r in whole)
        assert comparable(evaluate(make(), g, chunk=1)) == comparable(whole)

    def test_the_same_seed_gives_the_same_results(self, make):
        p, q = make(), make()
        g = self.genomes(p)
        assert comparable(evaluate(p, g, generation=3)) == comparable(evaluate(q, g, generation=3))
        if self.STOCHASTIC:  # another generation: other seeds
            assert comparable(evaluate(p, g, generation=3)) != comparable(evaluate(q, g, generation=4))

    def test_final_choice_tasks(self, make):
        p = make()
        g = self.genomes(p)[:2]
        out = evaluate(p, g, generation=7, purpose=seeding.PURPOSE_FINAL, games=3)
        assert len(out) == 2 and all(r.error is None for r in out)

    def test_failed_results(self, make):
        p = make()
        (task,) = p.make_tasks(self.genomes(p), 0, range(self.N), self.N)
        failed = p.failed_results(task, "worker lost")
        assert len(failed) == self.N and all(r.error == "worker lost" and r.weight == 0 for r in failed)

    def test_describe_banner_title_and_record_fields(self, make):
        p = make()
        assert isinstance(p.describe(), dict) and json.dumps(p.describe())
        assert isinstance(p.banner(), str) and p.banner() and "\n" not in p.banner()
        assert isinstance(p.title(), str) and p.title()
        record = p.record_metrics(evaluate(p, self.genomes(p)), 1.0)
        json.dumps(record)
        assert isinstance(p.progress_text(record), str)

    def test_state_round_trip(self, make):
        p = make()
        evaluate(p, self.genomes(p))
        state = jsonable(p.get_state())
        q = make()
        q.set_state(state)
        assert jsonable(q.get_state()) == state
