"""Architecture search: Keras hyperparameter genomes, each trained and scored.

``space`` (declarative YAML search spaces and their float encoding), ``hp`` (define-by-run
spaces from a build function), ``models`` (the built-in mlp / cnn families), ``accuracy``
and ``keras_train`` (training and scoring), ``problem`` (:class:`HyperparamProblem`: the
evaluation cache, NSGA-II, the final refit or cross-validation), ``user_model`` (a user's
build function and arrays, :func:`evonet.search`), ``config`` (the ``search:`` section) and
``cli`` (``evonet bench search``, ``evonet bench ray``). See docs/search.md.
"""
